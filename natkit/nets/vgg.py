"""VGG with per-layer widths: ``cfg`` lists conv widths and "M" for max-pooling."""

from __future__ import annotations

import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.nets.registry import register_model

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG_SMALL_CFG = [16, 16, "M", 32, 32, "M", 64, 64, "M"]
VGG_TINY_CFG = [4, "M", 8, "M"]


class VGG(nn.Module):
    def __init__(self, cfg, num_classes, in_channels=3, hidden=(128,), dropout=0.0, bn=True,
                 kernel_sizes=None, pool_size=1):
        super().__init__()
        convs = [c for c in cfg if c != "M"]
        if not convs or any((not isinstance(c, int)) or c <= 0 for c in convs):
            raise ConfigError(f"VGG widths must be positive integers, got {cfg!r}")
        if kernel_sizes is None:
            kernel_sizes = [3] * len(convs)
        if len(kernel_sizes) != len(convs):
            raise ConfigError("VGG kernel_sizes must give one size per conv layer")
        layers: list[nn.Module] = []
        c_in, k_iter = in_channels, iter(kernel_sizes)
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            k = next(k_iter)
            # "same" padding also for even kernels (AutoTune's {2,3,5} domain)
            layers.append(nn.Conv2d(c_in, c, k, padding="same", bias=not bn))
            if bn:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU(inplace=True))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        head: list[nn.Module] = [nn.Flatten()]
        f_in = c_in * pool_size * pool_size
        for h in hidden:
            head += [nn.Linear(f_in, h), nn.ReLU(inplace=True)]
            if dropout:
                head.append(nn.Dropout(dropout))
            f_in = h
        head.append(nn.Linear(f_in, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model("vgg")
def vgg(num_classes, in_channels=3, cfg=VGG_SMALL_CFG, **kw):
    return VGG(list(cfg), num_classes, in_channels, **kw)


@register_model("vgg_small")
def vgg_small(num_classes, in_channels=3, cfg=VGG_SMALL_CFG, hidden=(128,), **kw):
    """For 28–32 px inputs: three stages of two convs, one hidden dense layer."""
    return VGG(list(cfg), num_classes, in_channels, hidden=tuple(hidden), **kw)


@register_model("vgg_tiny")
def vgg_tiny(num_classes, in_channels=3, cfg=VGG_TINY_CFG, hidden=(16,), **kw):
    return VGG(list(cfg), num_classes, in_channels, hidden=tuple(hidden), **kw)


@register_model("vgg16")
def vgg16(num_classes, in_channels=3, cfg=VGG16_CFG, hidden=(4096, 4096), pool_size=7, dropout=0.5, **kw):
    return VGG(list(cfg), num_classes, in_channels, hidden=tuple(hidden), pool_size=pool_size,
               dropout=dropout, **kw)
