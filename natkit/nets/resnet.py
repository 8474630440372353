"""ResNet (basic and bottleneck blocks) with per-stage and per-block widths."""

from __future__ import annotations

import torch.nn as nn

from natkit.errors import ConfigError
from natkit.nets.registry import register_model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in, mid, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, mid, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(c_in, c_out, stride):
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """``widths[i]`` is stage i's inner width; a stage outputs ``widths[i] * expansion`` channels.

    ``block_widths`` (optional, one int per block) overrides each block's inner width, so a search
    or pruning plan can set every layer. ``small_input`` uses a 3x3 stem without max-pool (28–32 px).
    """

    def __init__(self, num_classes, in_channels=3, block="basic", layers=(2, 2, 2), widths=(16, 32, 64),
                 stem_width=16, small_input=True, block_widths=None):
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ConfigError(f"unknown ResNet block {block!r}")
        if len(layers) != len(widths) or any(int(w) <= 0 for w in widths) or stem_width <= 0:
            raise ConfigError(f"ResNet widths must be positive, one per stage: {widths!r}")
        cls = BasicBlock if block == "basic" else Bottleneck
        n_blocks = sum(layers)
        if block_widths is not None and (len(block_widths) != n_blocks or min(block_widths) <= 0):
            raise ConfigError(f"block_widths needs {n_blocks} positive ints, got {block_widths!r}")
        if small_input:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        c_in, b = stem_width, 0
        stages = []
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                mid = block_widths[b] if block_widths is not None else w
                stride = 2 if (j == 0 and i > 0) else 1
                blocks.append(cls(c_in, int(mid), int(w) * cls.expansion, stride))
                c_in = int(w) * cls.expansion
                b += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


@register_model("resnet")
def resnet(num_classes, in_channels=3, **kw):
    return ResNet(num_classes, in_channels, **kw)


@register_model("resnet_small")
def resnet_small(num_classes, in_channels=3, layers=(2, 2, 2), widths=(16, 32, 64), **kw):
    """CIFAR-style ResNet-14 with basic blocks for 28–32 px inputs."""
    return ResNet(num_classes, in_channels, layers=tuple(layers), widths=tuple(widths), **kw)


@register_model("resnet_tiny")
def resnet_tiny(num_classes, in_channels=3, layers=(1, 1), widths=(4, 8), stem_width=4, **kw):
    return ResNet(num_classes, in_channels, layers=tuple(layers), widths=tuple(widths),
                  stem_width=stem_width, **kw)


@register_model("resnet_tiny_bottleneck")
def resnet_tiny_bottleneck(num_classes, in_channels=3, layers=(1, 1), widths=(2, 4), stem_width=4, **kw):
    return ResNet(num_classes, in_channels, block="bottleneck", layers=tuple(layers),
                  widths=tuple(widths), stem_width=stem_width, **kw)


@register_model("resnet50")
def resnet50(num_classes, in_channels=3, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), **kw):
    kw.setdefault("small_input", False)
    kw.setdefault("stem_width", 64)
    return ResNet(num_classes, in_channels, block="bottleneck", layers=tuple(layers),
                  widths=tuple(widths), **kw)
