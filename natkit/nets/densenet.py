"""DenseNet with per-block growth rates; each dense layer concatenates onto its input."""

from __future__ import annotations

import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.nets.registry import register_model


class DenseLayer(nn.Module):
    def __init__(self, c_in, growth, bn_size):
        super().__init__()
        mid = bn_size * growth
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    """``growth_rate`` is an int or one int per dense block; ``init_width`` is the stem's width."""

    def __init__(self, num_classes, in_channels=3, growth_rate=12, block_config=(3, 3, 3), init_width=24,
                 bn_size=2, compression=0.5, small_input=True):
        super().__init__()
        growth = [growth_rate] * len(block_config) if isinstance(growth_rate, int) else list(growth_rate)
        if len(growth) != len(block_config) or min(growth) <= 0 or init_width <= 0:
            raise ConfigError(f"DenseNet growth rates must be positive, one per block: {growth_rate!r}")
        if small_input:
            stem = [nn.Conv2d(in_channels, init_width, 3, 1, 1, bias=False)]
        else:
            stem = [nn.Conv2d(in_channels, init_width, 7, 2, 3, bias=False), nn.BatchNorm2d(init_width),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        layers: list[nn.Module] = list(stem)
        c = init_width
        for i, (n, g) in enumerate(zip(block_config, growth)):
            for _ in range(n):
                layers.append(DenseLayer(c, g, bn_size))
                c += g
            if i != len(block_config) - 1:
                c_out = max(1, int(c * compression))
                layers.append(Transition(c, c_out))
                c = c_out
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("densenet")
def densenet(num_classes, in_channels=3, **kw):
    return DenseNet(num_classes, in_channels, **kw)


@register_model("densenet_small")
def densenet_small(num_classes, in_channels=3, growth_rate=12, block_config=(3, 3, 3), init_width=24, **kw):
    return DenseNet(num_classes, in_channels, growth_rate=growth_rate, block_config=tuple(block_config),
                    init_width=init_width, **kw)


@register_model("densenet_tiny")
def densenet_tiny(num_classes, in_channels=3, growth_rate=4, block_config=(2, 2), init_width=6, **kw):
    return DenseNet(num_classes, in_channels, growth_rate=growth_rate, block_config=tuple(block_config),
                    init_width=init_width, **kw)


@register_model("densenet121")
def densenet121(num_classes, in_channels=3, growth_rate=32, block_config=(6, 12, 24, 16), init_width=64, **kw):
    kw.setdefault("small_input", False)
    kw.setdefault("bn_size", 4)
    return DenseNet(num_classes, in_channels, growth_rate=growth_rate, block_config=tuple(block_config),
                    init_width=init_width, **kw)
