"""TASCNet's layer machinery: which layers count from the output, their genome, and rebuilding them
on a frozen pretrained trunk (stage 1), plus the registered `tascnet_net` family for reloading."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.nets.registry import register_model

# --------------------------------------------------------------------------------------------
# Layer analysis: which modules are "meaningful", in which order they run, which are coupled
# --------------------------------------------------------------------------------------------

MEANINGFUL = (nn.Conv2d, nn.Linear)
BASE_WIDTHS = (64, 128, 256, 512)  # AutoTune's filter / unit domain before scaling
KERNEL_DOMAINS = {"1,3,5": (1, 3, 5), "2,3,5": (2, 3, 5)}
DROPOUTS = (0.0, 0.25, 0.5)


def execution_order(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Leaf modules in the order a forward pass first calls them (modules never called are left out)."""
    names = {m: n for n, m in model.named_modules()}
    order, seen, handles = [], set(), []

    def hook(module, _inputs):
        if module not in seen:
            seen.add(module)
            order.append((names[module], module))

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order


def meaningful_layers(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Conv and dense layers counted from the output: index 0 is the output layer.

    Activations, batch norm, pooling, flatten, dropout and the functional joins (add, concat) do
    not count.
    """
    return [(n, m) for n, m in reversed(execution_order(model, example_input)) if isinstance(m, MEANINGFUL)]


@dataclass(frozen=True)
class LayerSlot:
    """One searchable layer. ``width_choices`` None = width pinned (tied to the frozen trunk)."""

    name: str
    kind: str  # "conv" | "dense"
    width: int
    kernel: int | None
    width_choices: tuple[int, ...] | None
    kernel_choices: tuple[int, ...] | None
    dropout_choices: tuple[float, ...] | None
    tied_to: str | None = None  # this layer's width follows that slot's width (residual coupling)

    def genes(self) -> list[tuple[str, int]]:
        """(gene name, number of levels) in the order they appear in the decision vector."""
        out = []
        if self.width_choices is not None and self.tied_to is None:
            out.append(("width", len(self.width_choices)))
        if self.kernel_choices is not None:
            out.append(("kernel", len(self.kernel_choices)))
        if self.dropout_choices is not None:
            out.append(("dropout", len(self.dropout_choices)))
        return out


def scaled_widths(reference: int, base=BASE_WIDTHS) -> tuple[int, ...]:
    """AutoTune's {64,128,256,512} scaled so that 512 maps to ``reference`` (the net's widest layer)."""
    scale = reference / base[-1]
    return tuple(sorted({max(1, int(round(b * scale))) for b in base}))


def layer_slots(model: nn.Module, example_input: torch.Tensor, k: int, *, kernels=(1, 3, 5),
                dropouts=DROPOUTS) -> list[LayerSlot]:
    """The last ``k`` meaningful layers before the output layer, nearest the output first.

    Widths coupled (through residual adds, per Torch-Pruning's dependency graph) to a layer that
    stays in the frozen trunk are pinned; widths coupled only to other rebuilt layers are tied to
    the one nearest the output. Strided or grouped convs keep their kernel size, so that the
    spatial sizes of residual partners stay equal.
    """
    layers = meaningful_layers(model, example_input)
    if len(layers) < 2:
        raise ConfigError("the network has no layer before its output layer to search")
    if not 1 <= k <= len(layers) - 1:
        raise ConfigError(f"k={k} is out of range: the network has {len(layers) - 1} layers before the output")
    convs = [m for _, m in layers if isinstance(m, nn.Conv2d)]
    denses = [m for _, m in layers[1:] if isinstance(m, nn.Linear)]
    conv_domain = scaled_widths(max(m.out_channels for m in convs)) if convs else ()
    dense_domain = scaled_widths(max(m.out_features for m in denses)) if denses else ()
    chosen = layers[1:k + 1]
    rebuilt = {m for _, m in layers[:k + 1]}
    coupling = _out_channel_coupling(model, example_input, [m for _, m in chosen])
    slot_of = {}
    slots = []
    for name, m in chosen:
        producers = coupling.get(m, [m])
        pinned = any(p not in rebuilt for p in producers)
        leader = next((slot_of[p] for p in producers if p in slot_of), None)
        if isinstance(m, nn.Conv2d):
            ks = m.kernel_size[0]
            fixed_kernel = m.stride != (1, 1) or m.groups != 1 or m.kernel_size[0] != m.kernel_size[1]
            slot = LayerSlot(name, "conv", m.out_channels, ks,
                             None if pinned else conv_domain,
                             None if fixed_kernel else tuple(kernels), None,
                             None if pinned else leader)
        else:
            slot = LayerSlot(name, "dense", m.out_features, None, None if pinned else dense_domain,
                             None, tuple(dropouts), None if pinned else leader)
        slots.append(slot)
        slot_of.setdefault(m, name)
        for p in producers:
            slot_of.setdefault(p, slot_of[m] if leader is None else leader)
    return slots


def _out_channel_coupling(model, example_input, modules) -> dict[nn.Module, list[nn.Module]]:
    """For each module: the conv/linear layers whose outputs must keep the same width as its own."""
    import torch_pruning as tp

    from natkit.prune.surgery import dependency_graph

    dg = dependency_graph(model, example_input)
    out = {}
    for m in modules:
        fn = tp.prune_conv_out_channels if isinstance(m, nn.Conv2d) else tp.prune_linear_out_channels
        group = dg.get_pruning_group(m, fn, idxs=[0])
        producers = []
        for dep, _ in group:
            t = dep.target.module
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(t, MEANINGFUL) and t not in producers:
                producers.append(t)
        out[m] = producers or [m]
    return out


# --------------------------------------------------------------------------------------------
# Stage-1 genome <-> layer configuration
# --------------------------------------------------------------------------------------------


def genome_size(slots: list[LayerSlot]) -> int:
    return sum(len(s.genes()) for s in slots)


def genome_bounds(slots: list[LayerSlot]) -> tuple[np.ndarray, np.ndarray]:
    levels = [n for s in slots for _, n in s.genes()]
    return np.zeros(len(levels), dtype=int), np.array(levels, dtype=int) - 1


def decode_genome(slots: list[LayerSlot], x) -> list[dict]:
    """Per slot: {"name", "kind", "width", "kernel", "dropout"} (nearest the output first)."""
    x = [int(v) for v in np.asarray(x).ravel()]
    if len(x) != genome_size(slots):
        raise ConfigError(f"stage-1 genome needs {genome_size(slots)} values, got {len(x)}")
    it = iter(x)
    plan, width_of = [], {}
    for s in slots:
        cfg = {"name": s.name, "kind": s.kind, "width": s.width, "kernel": s.kernel, "dropout": None}
        for gene, n in s.genes():
            v = min(max(next(it), 0), n - 1)
            if gene == "width":
                cfg["width"] = s.width_choices[v]
            elif gene == "kernel":
                cfg["kernel"] = s.kernel_choices[v]
            else:
                cfg["dropout"] = s.dropout_choices[v]
        if s.tied_to is not None:
            cfg["width"] = width_of[s.tied_to]
        width_of[s.name] = cfg["width"]
        plan.append(cfg)
    return plan


# --------------------------------------------------------------------------------------------
# Rebuilding the deeper layers on the frozen trunk
# --------------------------------------------------------------------------------------------


def _freeze_bn_stats(module, _inputs):
    # a frozen trunk keeps its pretrained normalisation even while the model is in train mode
    module.training = False


def rebuild(base: nn.Module, plan: list[dict], example_input: torch.Tensor, num_classes: int, *,
            seed: int = 0) -> nn.Module:
    """A copy of ``base`` whose planned layers (and output layer) are new, He-normal initialised.

    Everything that runs before the first rebuilt layer is the frozen trunk (``requires_grad``
    off, batch norm statistics frozen); batch norms that run after it are new too, because their
    inputs changed. Returns the model with ``model.tascnet_trainable`` (names of new modules).
    """
    model = unfreeze(copy.deepcopy(base).cpu())
    order = execution_order(model, example_input)
    index = {n: i for i, (n, _) in enumerate(order)}
    output_name = meaningful_layers(model, example_input)[0][0]
    by_name = {c["name"]: c for c in plan}
    missing = [n for n in by_name if n not in index]
    if missing:
        raise ConfigError(f"plan names layers the network does not have: {missing}")
    first = min([index[n] for n in by_name] + [index[output_name]])
    new_names = []
    dropout_at = {}  # name of an existing Dropout module -> rate from the plan
    for i, (name, m) in enumerate(order):
        if i < first:
            continue
        if name == output_name:
            new = nn.LazyLinear(num_classes, bias=m.bias is not None)
        elif name in by_name:
            cfg = by_name[name]
            if isinstance(m, nn.Conv2d):
                new = _new_conv(m, cfg)
            elif isinstance(m, nn.Linear):
                new = nn.LazyLinear(int(cfg["width"]), bias=m.bias is not None)
                rate = float(cfg.get("dropout") or 0.0)
                existing = _next_dropout(order, i)
                if existing is not None:
                    dropout_at[existing] = rate
                elif rate > 0:
                    # Dropout before the ReLU equals dropout after it (ReLU commutes with the mask)
                    new = nn.Sequential(new, nn.Dropout(rate))
            else:
                raise ConfigError(f"layer {name} is neither conv nor dense")
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            lazy = nn.LazyBatchNorm1d if isinstance(m, nn.BatchNorm1d) else nn.LazyBatchNorm2d
            new = lazy(eps=m.eps, momentum=m.momentum, affine=m.affine)
        elif name in dropout_at:
            model.set_submodule(name, nn.Dropout(dropout_at[name]))
            continue
        elif isinstance(m, MEANINGFUL):
            raise ConfigError(f"plan must cover every layer after the first rebuilt one; {name} is missing")
        else:
            continue
        model.set_submodule(name, new)
        new_names.append(name)
    model.eval()
    with torch.no_grad():
        model(example_input)  # materialise the lazy modules: their input widths follow the trunk
    new_modules = [model.get_submodule(n) for n in new_names]
    gen = torch.Generator().manual_seed(int(seed))
    for mod in new_modules:
        for sub in mod.modules():
            if isinstance(sub, MEANINGFUL):
                # He-normal (fan-in), as AutoTune initialises the layers it adds
                std = (2.0 / (sub.weight[0].numel())) ** 0.5
                with torch.no_grad():
                    sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) * std)
                    if sub.bias is not None:
                        sub.bias.zero_()
    trainable = {id(p) for mod in new_modules for p in mod.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    new_set = {id(sub) for mod in new_modules for sub in mod.modules()}
    for sub in model.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and id(sub) not in new_set:
            sub.register_forward_pre_hook(_freeze_bn_stats)
    model.tascnet_trainable = new_names
    model.train()
    return model


def _next_dropout(order, i):
    """Name of the Dropout between layer ``i`` and the next conv/dense layer, if there is one."""
    for name, m in order[i + 1:]:
        if isinstance(m, MEANINGFUL):
            return None
        if isinstance(m, nn.Dropout):
            return name
    return None


def _new_conv(m: nn.Conv2d, cfg: dict) -> nn.Module:
    k = int(cfg.get("kernel") or m.kernel_size[0])
    if m.stride == (1, 1):
        padding = "same"  # also for even kernels (AutoTune's {2,3,5}): spatial size unchanged
    else:
        if k != m.kernel_size[0]:
            raise ConfigError(f"kernel of strided conv cannot change ({k} != {m.kernel_size[0]})")
        padding = m.padding
    return nn.LazyConv2d(int(cfg["width"]), k, stride=m.stride, padding=padding, dilation=m.dilation,
                         groups=1, bias=m.bias is not None)


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable and let every batch norm update again (stage 2)."""
    for p in model.parameters():
        p.requires_grad_(True)
    for sub in model.modules():
        for key, fn in list(sub._forward_pre_hooks.items()):
            if fn is _freeze_bn_stats:
                del sub._forward_pre_hooks[key]
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]




def deeper_parameters(model: nn.Module, example_input: torch.Tensor, k: int) -> list[nn.Parameter]:
    """Parameters of the last ``k`` layers before the output, the output layer, and every module that
    runs after the first of them: what conventional transfer fine-tunes (same layers TASCNet rebuilds)."""
    order = execution_order(model, example_input)
    names = {n for n, _ in meaningful_layers(model, example_input)[:k + 1]}
    first = min(i for i, (n, _) in enumerate(order) if n in names)
    return [p for _, m in order[first:] for p in m.parameters(recurse=False)]


# --------------------------------------------------------------------------------------------
# Candidates rebuild through the core's registry, so `load_model` / `natkit export` work on them
# --------------------------------------------------------------------------------------------

ARCH_NAME = "tascnet_net"


@register_model(ARCH_NAME)
def _build_tascnet_net(num_classes, in_channels=3, base=None, layers=(), resolution=28):
    """A stage-1 layout (base family + rebuilt layers); stage-2 pruning is restored by load_model."""
    from natkit.nets import build_from_arch

    if not isinstance(base, dict):
        raise ConfigError("tascnet_net needs the base network's architecture ('base')")
    example = torch.zeros(2, in_channels, resolution, resolution)
    return unfreeze(rebuild(build_from_arch(base), list(layers), example, num_classes))


def describe(model: nn.Module, base_arch: dict, layers: list[dict], num_classes: int, resolution: int,
             channels: int) -> nn.Module:
    model.natkit_arch = {"name": ARCH_NAME, "kwargs": {"num_classes": num_classes, "in_channels": channels,
                                                       "base": base_arch, "layers": layers,
                                                       "resolution": resolution}, "module": __name__}
    model.natkit_input = {"resolution": resolution, "channels": channels}
    return model
