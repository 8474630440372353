"""The static MobileNetV3 subnet that NAT extracts from its supernet: plain modules with copied
weights, registered as `mbv3_subnet` so an exported subnet reloads with `natkit.nets.load_model`."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError
from natkit.nets.registry import register_model


def _act(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish(inplace=True)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x):
        s = F.relu(self.reduce(self.pool(x)))
        return x * F.hardsigmoid(self.expand(s))


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, mid, kernel, stride, act, se_mid, expand=True):
        super().__init__()
        self.use_residual = stride == 1 and c_in == c_out
        layers = []
        if expand:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), _act(act)]
        else:
            mid = c_in
        layers += [nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
                   nn.BatchNorm2d(mid), _act(act)]
        if se_mid:
            layers.append(SqueezeExcite(mid, se_mid))
        layers += [nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_residual else y


class MBV3Subnet(nn.Module):
    """A plain MobileNetV3 built from a subnet ``arch`` dict."""

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = copy.deepcopy(arch)
        a = arch
        self.stem = nn.Sequential(
            nn.Conv2d(a["in_channels"], a["stem"], 3, a["stem_stride"], 1, bias=False),
            nn.BatchNorm2d(a["stem"]), nn.Hardswish(inplace=True))
        self.first_block = InvertedResidual(a["stem"], a["first_block"], a["stem"], 3, 1, "relu", 0,
                                            expand=False)
        self.blocks = nn.Sequential(*[
            InvertedResidual(b["in"], b["out"], b["mid"], b["kernel"], b["stride"], b["act"], b["se"])
            for b in a["blocks"]])
        last = a["blocks"][-1]["out"]
        self.final_expand = nn.Sequential(
            nn.Conv2d(last, a["final_expand"], 1, bias=False), nn.BatchNorm2d(a["final_expand"]),
            nn.Hardswish(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = nn.Linear(a["final_expand"], a["feature_mix"], bias=False)
        self.dropout = nn.Dropout(a.get("dropout", 0.0))
        self.classifier = nn.Linear(a["feature_mix"], a["num_classes"])

    def forward(self, x):
        x = self.final_expand(self.blocks(self.first_block(self.stem(x))))
        x = F.hardswish(self.feature_mix(torch.flatten(self.pool(x), 1)))
        return self.classifier(self.dropout(x))


@register_model("mbv3_subnet")
def mbv3_subnet(num_classes, in_channels=3, **arch):
    arch = dict(arch, num_classes=num_classes, in_channels=in_channels)
    missing = {"stem", "stem_stride", "first_block", "blocks", "final_expand", "feature_mix"} - set(arch)
    if missing:
        raise ConfigError(f"mbv3_subnet arch lacks {', '.join(sorted(missing))}")
    return MBV3Subnet(arch)


# ----------------------------------------------------------------------------------------------
# dynamic (elastic) layers
