"""Knowledge Evolution's split of a network into a fit and a reset hypothesis, and the slim network.

KELS (kernel-level, convolution-aware split, Taha et al. 2021): with split rate ``s`` every conv or
linear layer's fit hypothesis is its first ``ceil(s * C_out)`` outputs times the first ``ceil(s * C)``
channels of every *source* feeding its input. "First-k" per source is what keeps the split aligned:

- the network input is one source that is kept whole (the first conv keeps all input channels);
- a residual addition joins tensors with the same channel count, hence the same first-k prefix;
- a DenseNet concatenation is several sources side by side, each split by its own first-k;
- a flatten turns each channel into ``H*W`` features, so a channel's features stay together;
- the final classifier (no weight layer after it) keeps all its outputs and masks only its inputs.

Instead of one hand-written rule per family, the split is found by tracing the model with
``torch.fx`` and propagating a *channel layout* (a tuple of ``(channels, kept)`` segments) through
the graph; this covers natkit's VGG, ResNet and DenseNet builders and torchvision's models alike.

WELS (weight-level split) draws one Bernoulli(s) mask per weight; it has no slim network.
Batch-norm layers are never reset; under KELS their fit part is the first-k of their input layout.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from natkit.errors import ConfigError

Layout = tuple  # of (channels, kept) segments, in channel order

_WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class LayerSplit:
    """The fit hypothesis of one conv/linear layer: a weight mask, a bias mask, kept in/out indices."""

    weight: torch.Tensor  # bool, weight's shape; True = fit hypothesis
    bias: torch.Tensor | None  # bool, one per output, or None when the layer has no bias
    out_idx: torch.Tensor | None = None  # KELS only: outputs the slim network keeps
    in_idx: torch.Tensor | None = None  # KELS only: inputs the slim network keeps

    def fit_share(self) -> float:
        return float(self.weight.float().mean())


@dataclass
class SplitMasks:
    mode: str  # "kels" | "wels"
    split_rate: float
    layers: dict = field(default_factory=dict)  # module name -> LayerSplit
    norms: dict = field(default_factory=dict)  # BN module name -> kept channel indices (KELS)

    def fit_share(self) -> float:
        """Share of conv/linear weights in the fit hypothesis."""
        fit = sum(int(m.weight.sum()) for m in self.layers.values())
        total = sum(m.weight.numel() for m in self.layers.values())
        return fit / max(total, 1)


# ---------------------------------------------------------------------------------------- masks


def kels_masks(model: nn.Module, split_rate: float, *, in_channels: int | None = None,
               resolution: int = 32) -> SplitMasks:
    """Kernel-level split: first-k outputs x first-k of every input source (see module doc)."""
    _check_rate(split_rate)
    masks = SplitMasks("kels", float(split_rate))
    layouts = _trace_layouts(model, split_rate, in_channels, resolution)
    modules = dict(model.named_modules())
    for name, (in_layout, out_layout) in layouts["layers"].items():
        m = modules[name]
        m_in, m_out = _layout_mask(in_layout), _layout_mask(out_layout)
        if isinstance(m, nn.Conv2d):
            if m.groups == 1:
                w = m_out.view(-1, 1, 1, 1) & m_in.view(1, -1, 1, 1)
                w = w.expand_as(m.weight).clone()
            else:  # depthwise: one input channel per output, tied to it
                w = m_out.view(-1, 1, 1, 1).expand_as(m.weight).clone()
        else:
            w = (m_out.view(-1, 1) & m_in.view(1, -1)).expand_as(m.weight).clone()
        bias = m_out.clone() if m.bias is not None else None
        masks.layers[name] = LayerSplit(w, bias, m_out.nonzero().flatten(), m_in.nonzero().flatten())
    for name, layout in layouts["norms"].items():
        masks.norms[name] = _layout_mask(layout).nonzero().flatten()
    return masks


def wels_masks(model: nn.Module, split_rate: float, *, generator: torch.Generator | None = None) -> SplitMasks:
    """Weight-level split: each weight (and bias) is in the fit hypothesis with probability s."""
    _check_rate(split_rate)
    masks = SplitMasks("wels", float(split_rate))
    for name, m in model.named_modules():
        if isinstance(m, _WEIGHT_LAYERS):
            w = torch.rand(m.weight.shape, generator=generator) < split_rate
            b = (torch.rand(m.bias.shape, generator=generator) < split_rate) if m.bias is not None else None
            masks.layers[name] = LayerSplit(w, b)
    return masks


def split_masks(model, mode: str, split_rate: float, *, in_channels=None, resolution=32, generator=None):
    if mode == "kels":
        return kels_masks(model, split_rate, in_channels=in_channels, resolution=resolution)
    if mode == "wels":
        return wels_masks(model, split_rate, generator=generator)
    raise ConfigError(f"unknown split mode {mode!r}: use kels or wels")


def _check_rate(split_rate):
    if not 0 < float(split_rate) <= 1:
        raise ConfigError(f"split rate must lie in (0, 1], got {split_rate!r}")


def _layout_mask(layout: Layout) -> torch.Tensor:
    parts = [torch.arange(n) < k for n, k in layout]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


def _kept(n: int, s: float) -> int:
    return min(n, max(1, math.ceil(n * s - 1e-9)))  # guard: 0.3 * 10 is 3.0000000000000004 in floats


def _trace_layouts(model, split_rate, in_channels, resolution):
    """Propagate channel layouts through the fx graph; return each weight layer's (in, out) layouts."""
    if in_channels is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ConfigError("KELS needs a convolutional network (no Conv2d found)")
        in_channels = first.in_channels
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # dynamic control flow: tell the user which model, not a trace dump
        raise ConfigError(f"cannot trace {type(model).__name__} for the KELS split: {exc}") from None
    was_training = model.training
    gm.eval()
    ShapeProp(gm).propagate(torch.zeros(1, in_channels, resolution, resolution))
    gm.train(was_training)
    modules = dict(gm.named_modules())
    weight_nodes = [n for n in gm.graph.nodes
                    if n.op == "call_module" and isinstance(modules[n.target], _WEIGHT_LAYERS)]
    final = _final_layers(gm, weight_nodes)
    layout: dict = {}
    result = {"layers": {}, "norms": {}}
    for node in gm.graph.nodes:
        shape = _shape(node)
        if node.op == "placeholder":
            layout[node] = ((shape[1], shape[1]),)
        elif node.op == "call_module":
            m = modules[node.target]
            src = layout.get(node.args[0]) if node.args else None
            if isinstance(m, _WEIGHT_LAYERS):
                out_n = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                if isinstance(m, nn.Conv2d) and m.groups != 1:
                    if m.groups != m.in_channels or m.groups != m.out_channels:
                        raise ConfigError(f"KELS supports ordinary and depthwise convs, not groups={m.groups} "
                                          f"({node.target})")
                    out = src
                else:
                    out = ((out_n, out_n if node in final else _kept(out_n, split_rate)),)
                result["layers"][node.target] = (src, out)
                layout[node] = out
            elif isinstance(m, _NORM_LAYERS):
                result["norms"][node.target] = src
                layout[node] = src
            elif isinstance(m, nn.Flatten):
                layout[node] = _flatten(src, _shape(node.args[0]), shape)
            else:
                layout[node] = _same_channels(node, src, shape)
        elif node.op in ("call_function", "call_method"):
            layout[node] = _function_layout(node, layout, shape)
        elif node.op == "get_attr":
            layout[node] = None
    return result


def _final_layers(gm, weight_nodes):
    """Weight layers with no weight layer downstream: they keep all their outputs."""
    weight_set = set(weight_nodes)
    final = set()
    for w in weight_nodes:
        stack, seen, downstream = list(w.users), set(), False
        while stack and not downstream:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            downstream = n in weight_set
            stack.extend(n.users)
        if not downstream:
            final.add(w)
    return final


def _shape(node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _flatten(src, in_shape, out_shape):
    if src is None or in_shape is None or out_shape is None:
        raise ConfigError("KELS cannot follow a flatten whose shapes are unknown")
    if len(in_shape) == len(out_shape):
        return src
    spatial = math.prod(in_shape[2:]) if len(in_shape) > 2 else 1
    if len(out_shape) != 2 or out_shape[1] != in_shape[1] * spatial:
        raise ConfigError(f"KELS supports flattening channels into features only, got {in_shape} -> {out_shape}")
    return tuple((n * spatial, k * spatial) for n, k in src)


def _same_channels(node, src, shape):
    if src is None:
        return None
    channels = sum(n for n, _ in src)
    if shape is not None and len(shape) >= 2 and shape[1] != channels:
        raise ConfigError(f"KELS cannot follow {node.format_node()}: it changes {channels} channels to {shape[1]}")
    return src


_FLATTENS = {torch.flatten, "flatten", "view", "reshape", torch.reshape}
_CATS = {torch.cat, torch.concat}


def _function_layout(node, layout, shape):
    target = node.target
    tensors = [a for a in node.args if isinstance(a, fx.Node) and layout.get(a) is not None]
    if target in _CATS:
        parts = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim not in (1, -3):
            raise ConfigError(f"KELS supports channel concatenation only (dim=1), got dim={dim}")
        return tuple(seg for p in parts for seg in layout[p])
    if target in _FLATTENS:
        return _flatten(layout[node.args[0]], _shape(node.args[0]), shape)
    if not tensors:
        return None
    first = layout[tensors[0]]
    if target in (operator.add, operator.iadd, torch.add, "add", "add_", operator.mul, torch.mul, "mul"):
        for other in tensors[1:]:
            if _layout_mask(layout[other]).tolist() != _layout_mask(first).tolist():
                raise ConfigError(f"KELS residual join {node.name} adds tensors with different splits")
    return _same_channels(node, first, shape)


# ---------------------------------------------------------------------------- generation step


@torch.no_grad()
def reset_hypothesis(model: nn.Module, masks: SplitMasks, *, generator: torch.Generator | None = None) -> None:
    """Keep the fit hypothesis, re-initialise the reset hypothesis; BN layers are left alone.

    Fresh weights are Kaiming-uniform with a = sqrt(5) and fresh biases uniform in
    +-1/sqrt(fan_in): PyTorch's own conv/linear initialisation, as in the paper's code.
    """
    modules = dict(model.named_modules())
    for name, split in masks.layers.items():
        m = modules[name]
        fresh = torch.empty_like(m.weight)
        nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
        m.weight.copy_(torch.where(split.weight.to(m.weight.device), m.weight, fresh))
        if m.bias is not None and split.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            fresh_b = torch.empty_like(m.bias).uniform_(-bound, bound, generator=generator)
            m.bias.copy_(torch.where(split.bias.to(m.bias.device), m.bias, fresh_b))


@torch.no_grad()
def zero_reset(model: nn.Module, masks: SplitMasks) -> nn.Module:
    """A copy of ``model`` whose reset hypothesis is zero (the fit hypothesis alone)."""
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for name, split in masks.layers.items():
        m = modules[name]
        m.weight.mul_(split.weight.to(m.weight.dtype))
        if m.bias is not None and split.bias is not None:
            m.bias.mul_(split.bias.to(m.bias.dtype))
    return out


# -------------------------------------------------------------------------------- slim network


def slim_state_dict(model: nn.Module, masks: SplitMasks) -> dict:
    """The fit hypothesis as a state dict of first-k slices (BN running statistics included)."""
    if masks.mode != "kels":
        raise ConfigError("only the KELS split defines a slim network")
    state = {}
    modules = dict(model.named_modules())
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        m = modules.get(owner)
        if owner in masks.layers:
            split = masks.layers[owner]
            if leaf == "weight":
                value = value[split.out_idx]
                if not (isinstance(m, nn.Conv2d) and m.groups != 1):
                    value = value[:, split.in_idx]
            elif leaf == "bias":
                value = value[split.out_idx]
        elif owner in masks.norms and value.dim() == 1:
            value = value[masks.norms[owner]]
        state[key] = value.detach().clone()
    return state


def scaled_arch(arch: dict, split_rate: float) -> dict | None:
    """The builder arguments of the same family at width factor ``s`` (first-k widths, ceil).

    Returns None for families whose widths natkit's builders do not expose (the slim network is then
    the dense module tree resized to the slim shapes).
    """
    name, kw = arch.get("name", ""), copy.deepcopy(arch.get("kwargs", {}))
    s = split_rate
    if name.startswith("vgg") and not name.startswith("tv_"):
        from natkit.nets import create_model

        probe = create_model(name, **kw)
        cfg = kw.get("cfg") or _vgg_cfg(probe)
        kw["cfg"] = [c if c == "M" else _kept(int(c), s) for c in cfg]
        hidden = kw.get("hidden")
        if hidden is None:
            hidden = [m.out_features for m in probe.classifier if isinstance(m, nn.Linear)][:-1]
        kw["hidden"] = [_kept(int(h), s) for h in hidden]
        return {"name": name, "kwargs": kw}
    if name.startswith("resnet"):
        from natkit.nets import create_model

        probe = create_model(name, **kw)
        stem = probe.stem[0].out_channels
        # a stage's inner width is its output width over the block expansion
        widths = [(st[-1].bn3 if hasattr(st[-1], "bn3") else st[-1].bn2).num_features // type(st[-1]).expansion
                  for st in probe.stages]
        inner = [blk.conv1.out_channels for stage in probe.stages for blk in stage]
        kw["stem_width"] = _kept(stem, s)
        kw["widths"] = [_kept(int(w), s) for w in widths]
        kw["block_widths"] = [_kept(int(w), s) for w in inner]
        return {"name": name, "kwargs": kw}
    if name.startswith("densenet"):
        from natkit.nets import create_model

        probe = create_model(name, **kw)
        growth = kw.get("growth_rate")
        if growth is None:
            growth = [blk.conv2.out_channels for blk in probe.features if hasattr(blk, "conv2")][0]
        growth = [growth] if isinstance(growth, int) else list(growth)
        kw["growth_rate"] = [_kept(int(g), s) for g in growth] if len(growth) > 1 else _kept(int(growth[0]), s)
        kw["init_width"] = _kept(int(probe.features[0].out_channels), s)
        return {"name": name, "kwargs": kw}
    return None


def _vgg_cfg(model):
    cfg = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            cfg.append(m.out_channels)
        elif isinstance(m, nn.MaxPool2d):
            cfg.append("M")
    return cfg


def extract_slim(model: nn.Module, masks: SplitMasks) -> nn.Module:
    """The slim network: the same family built at width factor s, holding the fit hypothesis.

    It is built through the family's width arguments (``scaled_arch``); layers a builder cannot size
    exactly (DenseNet transitions, bottleneck outputs whose ceil rounding differs) are resized to
    the fit hypothesis' shapes with the core's ``resize_to_state_dict``, as ``load_model`` does.
    """
    from natkit.nets.io import resize_to_state_dict

    state = slim_state_dict(model, masks)
    arch = getattr(model, "natkit_arch", None)
    slim = None
    slim_arch = scaled_arch(arch, masks.split_rate) if arch else None
    if slim_arch is not None:
        from natkit.nets import build_from_arch

        try:
            slim = build_from_arch(slim_arch)
        except Exception:  # a builder that cannot take these widths: fall back to resizing
            slim = None
        if slim is not None:
            resize_to_state_dict(slim, state)
            if not _same_shapes(slim.state_dict(), state):
                slim = None
    if slim is None:  # same module tree as the dense network, layers resized to the slim shapes
        slim = copy.deepcopy(model)
        resize_to_state_dict(slim, state)
        slim_arch = arch
        if not _same_shapes(slim.state_dict(), state):
            raise ConfigError(f"cannot build a slim {type(model).__name__}: layer shapes do not fit the split")
    slim.load_state_dict(state)
    if slim_arch is not None:
        slim.natkit_arch = slim_arch
    slim.train(model.training)
    return slim.to(next(model.parameters()).device)


def _same_shapes(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
