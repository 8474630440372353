"""Elastic MobileNetV3 supernet (Once-for-All style) and the static subnets it yields.

The supernet holds the largest network. A subnet is described by a JSON ``arch`` dict (see
``MBV3Config.subnet_arch``) and activated in place with ``set_active(arch)``: every dynamic layer
then slices the first channels of its weights, depthwise kernels are centre-cropped 7 -> 5 -> 3 and
passed through learned kernel transformation matrices, and BN uses the first channels of its affine
parameters and running statistics. ``extract(arch)`` copies the active weights into an ordinary
``MBV3Subnet`` of ``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear`` layers, registered as
``mbv3_subnet`` so ``natkit.nets.build_from_arch`` rebuilds an exported subnet from its JSON.

Width multipliers are elastic inside one supernet (first-k output channels of every layer), where
NAT trained one supernet per multiplier; sharing saves a second pretraining on 2 CPU cores.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError
from natkit.methods.nat import subnet as _static  # noqa: F401  (registers `mbv3_subnet` for extract)
from natkit.nets.registry import register_model

N_STAGES = 5
MAX_DEPTH = 4


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


@dataclass(frozen=True)
class MBV3Config:
    """Shape of the supernet and of the choices the genome makes (one search-space instance)."""

    resolutions: tuple = (24, 28, 32)
    width_mults: tuple = (1.0, 1.2)
    kernel_sizes: tuple = (3, 5, 7)
    expand_ratios: tuple = (3, 4, 6)
    depths: tuple = (2, 3, 4)
    stem_width: int = 8
    stem_stride: int = 2
    first_block_width: int = 8
    stage_widths: tuple = (12, 16, 24, 32, 40)
    strides: tuple = (2, 2, 1, 2, 1)
    acts: tuple = ("relu", "relu", "hswish", "hswish", "hswish")
    se: tuple = (False, True, False, True, True)
    final_expand_ratio: int = 6
    feature_mix_width: int = 128
    divisor: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        for name in ("stage_widths", "strides", "acts", "se"):
            if len(getattr(self, name)) != N_STAGES:
                raise ConfigError(f"supernet {name} needs {N_STAGES} entries, got {getattr(self, name)!r}")
        if tuple(self.kernel_sizes) != tuple(sorted(self.kernel_sizes)) or any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel sizes must be odd and ascending, got {self.kernel_sizes!r}")
        if len(self.kernel_sizes) != 3 or len(self.expand_ratios) != 3:
            raise ConfigError("NAT's genome needs exactly 3 kernel sizes and 3 expand ratios")
        if tuple(self.depths) != (2, 3, 4):
            raise ConfigError("NAT's genome encodes depths {2,3,4} (4 layer genes per stage)")
        if any(a not in ("relu", "hswish") for a in self.acts):
            raise ConfigError(f"activations must be 'relu' or 'hswish', got {self.acts!r}")
        if not self.resolutions or any(int(r) < 8 for r in self.resolutions):
            raise ConfigError(f"resolutions must be >= 8 px, got {self.resolutions!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "MBV3Config":
        from natkit.core.config import check_keys

        check_keys(d, {f.name for f in dataclasses.fields(cls)}, "[space] (nat_mbv3 supernet)")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    # widths for one multiplier
    def widths(self, width_mult: float) -> dict:
        md = lambda v: make_divisible(v * width_mult, self.divisor)  # noqa: E731
        stages = [md(w) for w in self.stage_widths]
        return {
            "stem": md(self.stem_width),
            "first": md(self.first_block_width),
            "stages": stages,
            "final_expand": make_divisible(self.stage_widths[-1] * self.final_expand_ratio * width_mult,
                                           self.divisor),
            "feature_mix": md(self.feature_mix_width),
        }

    def mid_width(self, in_width: int, expand: float) -> int:
        return make_divisible(round(in_width * expand), self.divisor)

    def se_width(self, mid: int) -> int:
        return make_divisible(mid // 4, self.divisor)

    def subnet_arch(self, resolution: int, width_mult: float, layers, *, num_classes: int,
                    in_channels: int) -> dict:
        """JSON description of one subnet.

        ``layers`` lists per stage the (kernel, expand) of each active block, first blocks first.
        """
        if len(layers) != N_STAGES:
            raise ConfigError(f"need {N_STAGES} stages of layers, got {len(layers)}")
        w = self.widths(width_mult)
        blocks = []
        c_in = w["first"]
        for s, stage in enumerate(layers):
            if not (min(self.depths) <= len(stage) <= max(self.depths)):
                raise ConfigError(f"stage {s} depth {len(stage)} not in {self.depths}")
            for j, (k, e) in enumerate(stage):
                mid = self.mid_width(c_in, e)
                blocks.append({
                    "stage": s, "index": j, "in": c_in, "out": w["stages"][s], "mid": mid,
                    "kernel": int(k), "expand": e, "stride": self.strides[s] if j == 0 else 1,
                    "act": self.acts[s], "se": self.se_width(mid) if self.se[s] else 0,
                })
                c_in = w["stages"][s]
        return {
            "resolution": int(resolution), "width_mult": float(width_mult),
            "in_channels": int(in_channels), "num_classes": int(num_classes),
            "stem": w["stem"], "stem_stride": self.stem_stride, "first_block": w["first"],
            "blocks": blocks, "final_expand": w["final_expand"], "feature_mix": w["feature_mix"],
            "dropout": self.dropout,
        }

    def largest_layers(self):
        return [[(max(self.kernel_sizes), max(self.expand_ratios))] * max(self.depths)] * N_STAGES

    def smallest_layers(self):
        return [[(min(self.kernel_sizes), min(self.expand_ratios))] * min(self.depths)] * N_STAGES


# ----------------------------------------------------------------------------------------------
# static subnet


def _cached(module, shape_key, tensors, compute):
    """The active weight, memoised while gradients are off (BN recalibration, evaluation): the
    same subnet then runs several batches without re-slicing or re-transforming its kernels.
    The key holds every source tensor's identity and version, so any update invalidates it."""
    if torch.is_grad_enabled():
        return compute()
    key = (shape_key, tuple((id(t), t._version) for t in tensors))
    cache = module.__dict__.get("_active_cache")
    if cache is None or cache[0] != key:
        cache = (key, compute().contiguous())
        module.__dict__["_active_cache"] = cache
    return cache[1]


class DynamicBN(nn.Module):
    """BatchNorm over the first ``C`` channels of a full-size ``nn.BatchNorm2d``.

    The real ``nn.BatchNorm2d`` is kept as a child so generic BN tools (resetting statistics,
    cumulative momentum for recalibration) see and configure it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        bn, c = self.bn, x.size(1)
        if c == bn.num_features:
            return bn(x)
        factor = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        use_batch = bn.training or not bn.track_running_stats
        # slices of 1-D buffers are views, so the running statistics update in place
        return F.batch_norm(x, bn.running_mean[:c] if bn.track_running_stats else None,
                            bn.running_var[:c] if bn.track_running_stats else None,
                            bn.weight[:c], bn.bias[:c], use_batch, factor, bn.eps)


class DynamicPointwise(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def active_weight(self, c_in, c_out):
        return _cached(self, (c_in, c_out), [self.weight], lambda: self.weight[:c_out, :c_in])

    def forward(self, x, c_out):
        b = None if self.bias is None else self.bias[:c_out]
        return F.conv2d(x, self.active_weight(x.size(1), c_out), b)


class DynamicDepthwise(nn.Module):
    """Depthwise conv with elastic kernel: centre crop plus per-layer transformation matrices."""

    def __init__(self, channels: int, kernel_sizes, stride: int):
        super().__init__()
        self.kernel_sizes = sorted(kernel_sizes)
        self.stride = stride
        k_max = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(channels, 1, k_max, k_max))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # one (k*k x k*k) matrix per step down, shared by all channels, starting at identity
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernel_sizes[1:], self.kernel_sizes[:-1])})

    def active_weight(self, channels: int, kernel: int):
        return _cached(self, (channels, kernel), [self.weight, *self.transforms.values()],
                       lambda: self._transform(channels, kernel))

    def _transform(self, channels: int, kernel: int):
        w = self.weight[:channels]
        for big, small in zip(reversed(self.kernel_sizes[1:]), reversed(self.kernel_sizes[:-1])):
            if kernel >= big:
                break
            off = (big - small) // 2
            crop = w[:, :, off:off + small, off:off + small].reshape(channels, small * small)
            w = F.linear(crop, self.transforms[f"{big}to{small}"]).reshape(channels, 1, small, small)
        return w

    def forward(self, x, kernel):
        c = x.size(1)
        return F.conv2d(x, self.active_weight(c, kernel), None, self.stride, kernel // 2, 1, c)


def _apply_act(x, name):
    # in place, like the static subnet: BN's backward does not need its output
    return F.relu(x, inplace=True) if name == "relu" else F.hardswish(x, inplace=True)


class DynamicSE(nn.Module):
    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.reduce = DynamicPointwise(channels, mid, bias=True)
        self.expand = DynamicPointwise(mid, channels, bias=True)

    def forward(self, x, mid):
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(self.reduce(s, mid))
        return x * F.hardsigmoid(self.expand(s, x.size(1)))


class DynamicBlock(nn.Module):
    def __init__(self, c_in, c_out, mid, kernel_sizes, stride, act, se_mid):
        super().__init__()
        self.act, self.stride = act, stride
        self.expand_conv = DynamicPointwise(c_in, mid)
        self.expand_bn = DynamicBN(mid)
        self.dw = DynamicDepthwise(mid, kernel_sizes, stride)
        self.dw_bn = DynamicBN(mid)
        self.se = DynamicSE(mid, se_mid) if se_mid else None
        self.project = DynamicPointwise(mid, c_out)
        self.project_bn = DynamicBN(c_out)
        self.active = None  # the block's entry of the active arch

    def forward(self, x):
        b = self.active
        y = _apply_act(self.expand_bn(self.expand_conv(x, b["mid"])), self.act)
        y = _apply_act(self.dw_bn(self.dw(y, b["kernel"])), self.act)
        if self.se is not None:
            y = self.se(y, b["se"])
        y = self.project_bn(self.project(y, b["out"]))
        return x + y if (self.stride == 1 and x.size(1) == b["out"]) else y

    @torch.no_grad()
    def sort_channels(self):
        """Reorder hidden channels by importance (L1 of the projection) so first-k keeps the best."""
        order = self.project.weight.abs().sum((0, 2, 3)).argsort(descending=True)
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        for bn in (self.expand_bn.bn, self.dw_bn.bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        self.dw.weight.copy_(self.dw.weight[order])
        self.project.weight.copy_(self.project.weight[:, order])
        if self.se is not None:
            self.se.reduce.weight.copy_(self.se.reduce.weight[:, order])
            self.se.expand.weight.copy_(self.se.expand.weight[order])
            self.se.expand.bias.copy_(self.se.expand.bias[order])
            se_order = self.se.expand.weight.abs().sum((0, 2, 3)).argsort(descending=True)
            self.se.reduce.weight.copy_(self.se.reduce.weight[se_order])
            self.se.reduce.bias.copy_(self.se.reduce.bias[se_order])
            self.se.expand.weight.copy_(self.se.expand.weight[:, se_order])


class OFAMobileNetV3(nn.Module):
    """The supernet: the largest subnet's weights plus kernel transformation matrices."""

    def __init__(self, config: MBV3Config, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.config, self.num_classes, self.in_channels = config, num_classes, in_channels
        self.max_arch = config.subnet_arch(max(config.resolutions), max(config.width_mults),
                                           config.largest_layers(), num_classes=num_classes,
                                           in_channels=in_channels)
        a = self.max_arch
        self.stem_conv = nn.Conv2d(in_channels, a["stem"], 3, config.stem_stride, 1, bias=False)
        self.stem_bn = DynamicBN(a["stem"])
        self.first_dw = nn.Conv2d(a["stem"], a["stem"], 3, 1, 1, groups=a["stem"], bias=False)
        self.first_dw_bn = DynamicBN(a["stem"])
        self.first_pw = DynamicPointwise(a["stem"], a["first_block"])
        self.first_pw_bn = DynamicBN(a["first_block"])
        self.blocks = nn.ModuleList([
            DynamicBlock(b["in"], b["out"], b["mid"], config.kernel_sizes, b["stride"], b["act"], b["se"])
            for b in a["blocks"]])
        last = a["blocks"][-1]["out"]
        self.final_expand = DynamicPointwise(last, a["final_expand"])
        self.final_bn = DynamicBN(a["final_expand"])
        self.feature_mix = nn.Linear(a["final_expand"], a["feature_mix"], bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(a["feature_mix"], num_classes)
        self.active_arch = None
        self.set_active(self.max_arch)

    # -- activation ---------------------------------------------------------------------------
    def set_active(self, arch: dict) -> None:
        """Make ``arch`` the subnet that ``forward`` computes (no copy of weights)."""
        self._check(arch)
        by_pos = {(b["stage"], b["index"]): b for b in arch["blocks"]}
        for blk, ref in zip(self.blocks, self.max_arch["blocks"]):
            blk.active = by_pos.get((ref["stage"], ref["index"]))
        self.active_arch = arch

    def _check(self, arch):
        if arch.get("num_classes") != self.num_classes or arch.get("in_channels") != self.in_channels:
            raise ConfigError("subnet arch was made for another number of classes or input channels")
        m = self.max_arch
        for key in ("stem", "first_block", "final_expand", "feature_mix"):
            if arch[key] > m[key]:
                raise ConfigError(f"subnet {key} width {arch[key]} exceeds the supernet's {m[key]}")
        caps = {(b["stage"], b["index"]): b for b in m["blocks"]}
        for b in arch["blocks"]:
            ref = caps.get((b["stage"], b["index"]))
            if ref is None or b["mid"] > ref["mid"] or b["out"] > ref["out"] or b["se"] > ref["se"] \
                    or b["kernel"] not in self.config.kernel_sizes:
                raise ConfigError(f"block {b['stage']}.{b['index']} does not fit the supernet")

    def forward(self, x):
        a = self.active_arch
        x = _apply_act(self.stem_bn(F.conv2d(x, self.stem_conv.weight[:a["stem"]], None,
                                               self.config.stem_stride, 1)), "hswish")
        c = a["stem"]
        y = _apply_act(self.first_dw_bn(F.conv2d(x, self.first_dw.weight[:c], None, 1, 1, 1, c)), "relu")
        y = self.first_pw_bn(self.first_pw(y, a["first_block"]))
        x = x + y if c == a["first_block"] else y
        for blk in self.blocks:
            if blk.active is not None:
                x = blk(x)
        x = _apply_act(self.final_bn(self.final_expand(x, a["final_expand"])), "hswish")
        x = x.mean((2, 3))
        x = F.hardswish(F.linear(x, self.feature_mix.weight[:a["feature_mix"], :a["final_expand"]]))
        x = self.dropout(x)
        return F.linear(x, self.classifier.weight[:, :a["feature_mix"]], self.classifier.bias)

    def sort_channels(self) -> None:
        for blk in self.blocks:
            blk.sort_channels()

    # -- extraction ---------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: dict | None = None) -> nn.Module:
        """A standalone ``mbv3_subnet`` with copies of the subnet's active weights."""
        from natkit.nets.registry import create_model

        arch = self.active_arch if arch is None else arch
        self._check(arch)
        kwargs = {k: v for k, v in copy.deepcopy(arch).items() if k not in ("num_classes", "in_channels")}
        net = create_model("mbv3_subnet", num_classes=self.num_classes, in_channels=self.in_channels, **kwargs)
        a = arch

        def bn_copy(dst: nn.BatchNorm2d, src: DynamicBN):
            c = dst.num_features
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(dst, name).copy_(getattr(src.bn, name)[:c])
            dst.num_batches_tracked.copy_(src.bn.num_batches_tracked)
            dst.eps, dst.momentum = src.bn.eps, src.bn.momentum

        net.stem[0].weight.copy_(self.stem_conv.weight[:a["stem"]])
        bn_copy(net.stem[1], self.stem_bn)
        fb = net.first_block.body
        fb[0].weight.copy_(self.first_dw.weight[:a["stem"]])
        bn_copy(fb[1], self.first_dw_bn)
        fb[3].weight.copy_(self.first_pw.weight[:a["first_block"], :a["stem"]])
        bn_copy(fb[4], self.first_pw_bn)
        blocks = {(b["stage"], b["index"]): blk for blk, b in zip(self.blocks, self.max_arch["blocks"])}
        for dst, b in zip(net.blocks, a["blocks"]):
            src = blocks[(b["stage"], b["index"])]
            body = list(dst.body)
            body[0].weight.copy_(src.expand_conv.weight[:b["mid"], :b["in"]])
            bn_copy(body[1], src.expand_bn)
            body[3].weight.copy_(src.dw.active_weight(b["mid"], b["kernel"]))
            bn_copy(body[4], src.dw_bn)
            i = 6
            if b["se"]:
                se = body[6]
                se.reduce.weight.copy_(src.se.reduce.weight[:b["se"], :b["mid"]])
                se.reduce.bias.copy_(src.se.reduce.bias[:b["se"]])
                se.expand.weight.copy_(src.se.expand.weight[:b["mid"], :b["se"]])
                se.expand.bias.copy_(src.se.expand.bias[:b["mid"]])
                i = 7
            body[i].weight.copy_(src.project.weight[:b["out"], :b["mid"]])
            bn_copy(body[i + 1], src.project_bn)
        last = a["blocks"][-1]["out"]
        net.final_expand[0].weight.copy_(self.final_expand.weight[:a["final_expand"], :last])
        bn_copy(net.final_expand[1], self.final_bn)
        net.feature_mix.weight.copy_(self.feature_mix.weight[:a["feature_mix"], :a["final_expand"]])
        net.classifier.weight.copy_(self.classifier.weight[:, :a["feature_mix"]])
        net.classifier.bias.copy_(self.classifier.bias)
        net.train(self.training)
        return net


@register_model("ofa_mbv3")
def ofa_mbv3(num_classes, in_channels=3, **config):
    return OFAMobileNetV3(MBV3Config.from_dict(config), num_classes, in_channels)
