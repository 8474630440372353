"""TASCNet (Tula et al., 2022): target-aware search of the deeper layers, then filter compression.

Stage 1 (after AutoTune): the last k "meaningful" layers of a source-pretrained network, counted
from the output (conv and dense layers only; the output layer itself is always rebuilt for the
target classes and does not count towards k), are rebuilt with fresh He-normal weights and the
widths, kernel sizes and dropout rates of the decision vector, on top of the frozen pretrained
trunk, and trained E epochs on the target. k is fixed, or grows from 1 while the best validation
accuracy still improves (AutoTune's rule). The original searches with single-objective Bayesian
optimisation; here NSGA-II returns a front over (error, params, macs).

Stage 2: a chosen stage-1 network (the knee by default) is fine-tuned while its conv weights are
recorded every epoch; in every conv layer with more than a threshold of filters the most similar
filter pairs (cosine similarity of weight trajectories) are found, the smaller-L1 filter of each
pair is removed physically (Torch-Pruning through ``natkit.prune.surgery``), the network is
fine-tuned again, and this repeats while validation accuracy stays within a tolerance of the best.
The per-layer share of pairs to remove and the tolerance are the decision vector of a second
pymoo problem. Every candidate of both stages is archived with method ``tascnet`` and its stage.

Choices where the paper or the issue is silent:
- Residual joins: a layer whose output width is tied (Torch-Pruning's dependency graph) to a layer
  of the frozen trunk keeps its width (only its kernel is searched); widths tied only to other
  rebuilt layers share one gene. Strided convs keep their kernel size so residual partners agree.
- The trunk's batch norms keep their pretrained statistics during stage 1 (frozen, as in Keras).
- Stage 2 fine-tunes every layer (the paper compresses "the fine-tuned CNN"), one ``train`` call
  per epoch at a constant learning rate so the weights can be snapshotted between epochs.
- Similarity of two filters = cosine of their weight vectors averaged over the recorded epochs;
  pairs are disjoint (greedy from the most similar down); at most ``share * min(C // 2, C - t)``
  pairs per layer and iteration, so a layer never drops below the threshold ``t``.
- Knee = the stage-1 front member nearest the ideal point after scaling each objective to [0, 1].
- Archived encodings: ``[1, k, *genes]`` (stage 1), ``[2, *genes]`` (stage 2); the head-only
  transfer, the stage-2 start network and intermediate stage-2 iterations are archived as well
  (encodings ``[1, 0]`` and ``{"stage": 2, ...}`` dicts).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from natkit.core.evaluator import Evaluator
from natkit.core.space import SearchSpace
from natkit.errors import ConfigError

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

    from natkit.prune.similarity import dependency_graph

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


def set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent = model
    parts = dotted.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    m = model
    for p in dotted.split("."):
        m = getattr(m, p)
    return m


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
            set_module(model, name, nn.Dropout(dropout_at[name]))
            continue
        elif isinstance(m, MEANINGFUL):
            raise ConfigError(f"plan must cover every layer after the first rebuilt one; {name} is missing")
        else:
            continue
        set_module(model, name, new)
        new_names.append(name)
    model.eval()
    with torch.no_grad():
        model(example_input)  # materialise the lazy modules: their input widths follow the trunk
    new_modules = [get_module(model, n) for n in new_names]
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


def _build_tascnet_net(num_classes, in_channels=3, base=None, layers=(), resolution=28):
    """A stage-1 layout (base family + rebuilt layers); stage-2 pruning is restored by load_model."""
    from natkit.nets import build_from_arch

    if not isinstance(base, dict):
        raise ConfigError("tascnet_net needs the base network's architecture ('base')")
    example = torch.zeros(2, in_channels, resolution, resolution)
    return unfreeze(rebuild(build_from_arch(base), list(layers), example, num_classes))


def _register():
    from natkit.nets.registry import list_models, register_model

    if ARCH_NAME not in list_models():
        register_model(ARCH_NAME)(_build_tascnet_net)


_register()


def describe(model: nn.Module, base_arch: dict, layers: list[dict], num_classes: int, resolution: int,
             channels: int) -> nn.Module:
    model.natkit_arch = {"name": ARCH_NAME, "kwargs": {"num_classes": num_classes, "in_channels": channels,
                                                       "base": base_arch, "layers": layers,
                                                       "resolution": resolution}}
    model.natkit_input = {"resolution": resolution, "channels": channels}
    return model


# --------------------------------------------------------------------------------------------
# Shared plumbing: data, training budget, measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Setting:
    task: object
    resolution: int
    channels: int
    device: str = "cpu"
    lr: float = 0.05
    finetune_lr: float = 0.01
    batch_size: int = 64
    max_batches: int | None = None
    latency: bool = False

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(2, self.channels, self.resolution, self.resolution)

    def describe(self) -> dict:
        return {"resolution": self.resolution, "channels": self.channels, "lr": self.lr,
                "finetune_lr": self.finetune_lr, "batch_size": self.batch_size, "max_batches": self.max_batches,
                "n_train": len(self.task.train)}

    def fit(self, model, epochs, *, seed, lr=None, params=None, loss_hook=None, schedule="cosine"):
        from natkit.train import TrainConfig, train

        if epochs <= 0:
            return []
        cfg = TrainConfig(epochs=epochs, lr=lr or self.lr, batch_size=self.batch_size, schedule=schedule,
                          max_batches=self.max_batches)
        return train(model, self.task, cfg, device=self.device, resolution=self.resolution,
                     channels=self.channels, params=params, seed=seed, loss_hook=loss_hook)

    def error(self, model, split="val") -> float:
        from natkit.train import evaluate

        return float(evaluate(model, self.task, split, device=self.device, resolution=self.resolution,
                              channels=self.channels)["error"])

    def measure(self, model) -> dict:
        from natkit.measure import count_latency_if

        model.cpu()
        return count_latency_if(model, self.resolution, self.channels, self.latency)


def _seed(seed, encoding) -> int:
    from natkit.utils.seed import derive_seed

    return derive_seed(int(seed), [int(v) for v in encoding])


def transfer_head(base: nn.Module, s: Setting, *, epochs: float, seed: int) -> nn.Module:
    """The source network with a new output layer for the target, trained alone on the frozen rest."""
    model = rebuild(base, [], s.example, s.task.num_classes, seed=seed)
    s.fit(model, epochs, seed=seed, params=trainable_parameters(model))
    return describe(model, base.natkit_arch, [], s.task.num_classes, s.resolution, s.channels)


# --------------------------------------------------------------------------------------------
# Stage 1: search the deeper layers
# --------------------------------------------------------------------------------------------


class Stage1Space(SearchSpace):
    """Per searched layer: width (if free), kernel size (conv), dropout (dense), as level indices.

    The archived encoding is ``[1, k, *levels]``: stage and k come first, so candidates of both
    stages and of every k live side by side in one archive.
    """

    def __init__(self, slots: list[LayerSlot], k: int):
        self.slots, self.k = slots, k
        self.xl, self.xu = genome_bounds(slots)

    def repair(self, x) -> list[int]:
        return [1, self.k, *super().repair(_strip_prefix(x, self.n_var))]

    def decode(self, encoding) -> dict:
        return {"stage": 1, "k": self.k, "layers": decode_genome(self.slots, _strip_prefix(encoding, self.n_var))}


def _strip_prefix(x, n_var):
    x = np.asarray(x).ravel()
    return x[len(x) - n_var:] if len(x) > n_var else x


class Stage1Evaluator(Evaluator):
    """Rebuild the planned layers on the frozen trunk, train them E epochs, measure."""

    def __init__(self, head_model: nn.Module, space: Stage1Space, setting: Setting, *, epochs: float,
                 seed: int, base_arch: dict):
        self.head_model, self.space, self.s = head_model, space, setting
        self.epochs, self.seed, self.base_arch = epochs, seed, base_arch

    def settings(self) -> dict:
        return {"stage": 1, "k": self.space.k, "epochs": self.epochs, **self.s.describe(), "base": self.base_arch,
                "source": getattr(self.head_model, "natkit_source", {}).get("path"), "seed": self.seed}

    def build(self, encoding) -> nn.Module:
        layers = self.space.decode(encoding)["layers"]
        model = rebuild(self.head_model, layers, self.s.example, self.s.task.num_classes,
                        seed=_seed(self.seed, encoding))
        return describe(model, self.base_arch, layers, self.s.task.num_classes, self.s.resolution, self.s.channels)

    def train_candidate(self, encoding) -> nn.Module:
        model = self.build(encoding)
        self.s.fit(model, self.epochs, seed=_seed(self.seed, encoding), params=trainable_parameters(model))
        return model

    def _evaluate(self, encoding):
        model = self.train_candidate(encoding)
        metrics = {"error": self.s.error(model), **self.s.measure(model)}
        return metrics, model.natkit_arch, {"stage": 1, "k": self.space.k}, unfreeze(model)


# --------------------------------------------------------------------------------------------
# Stage 2: compress redundant filters
# --------------------------------------------------------------------------------------------

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # of the disjoint pairs a layer may lose in one iteration
TOLERANCES = (1.0, 2.0, 3.0, 4.0)  # accuracy points below the best that still count as "kept"


class Stage2Space(SearchSpace):
    """Per prunable conv group: the share of its most similar pairs to remove each iteration; last
    gene: the accuracy tolerance. Encoding ``[2, *levels]``."""

    def __init__(self, group_names: list[str], tolerances=TOLERANCES, shares=SHARES):
        self.group_names, self.tolerances, self.shares = list(group_names), tuple(tolerances), tuple(shares)
        n = len(self.group_names)
        self.xl = np.zeros(n + 1, dtype=int)
        self.xu = np.array([len(self.shares) - 1] * n + [len(self.tolerances) - 1], dtype=int)

    def repair(self, x) -> list[int]:
        return [2, *super().repair(_strip_prefix(x, self.n_var))]

    def decode(self, encoding) -> dict:
        x = [int(v) for v in _strip_prefix(encoding, self.n_var)]
        return {"stage": 2, "shares": {n: self.shares[v] for n, v in zip(self.group_names, x[:-1])},
                "tolerance": self.tolerances[x[-1]]}

    def default(self, share=0.5, tolerance=2.0) -> list[int]:
        """The paper's setting as a genome: the same share everywhere and a 2-point tolerance."""
        s = int(np.argmin([abs(v - share) for v in self.shares]))
        t = int(np.argmin([abs(v - tolerance) for v in self.tolerances]))
        return [s] * len(self.group_names) + [t]


def remove_channels(model: nn.Module, plan: dict, example_input: torch.Tensor) -> nn.Module:
    """Physical removal through the core's surgery (Torch-Pruning underneath)."""
    try:
        from natkit.prune.surgery import remove_channels as core_remove
    except ImportError:  # the core's surgery module is not there yet: the same Torch-Pruning calls
        core_remove = None
    if core_remove is not None:
        return core_remove(model, plan, example_input)
    import torch_pruning as tp

    from natkit.prune.similarity import dependency_graph

    was_training = model.training
    dg = dependency_graph(model, example_input)
    for module, idxs in plan.items():
        if not idxs:
            continue
        group = dg.get_pruning_group(module, tp.prune_conv_out_channels, idxs=sorted(int(i) for i in idxs))
        if dg.check_pruning_group(group):
            group.prune()
    model.train(was_training)
    return model


@dataclass
class Stage2Start:
    """The chosen stage-1 network after its recorded fine-tune: every stage-2 evaluation starts here."""

    model: nn.Module
    trajectories: dict  # group name -> (epochs, channels, features)
    best_acc: float
    metrics: dict


class Stage2Evaluator(Evaluator):
    """Iterate select-most-similar-pairs / remove / fine-tune while val accuracy stays within tolerance."""

    def __init__(self, start: Stage2Start, space: Stage2Space, setting: Setting, *, epochs: int,
                 max_iterations: int, min_channels: int, pull_weight: float = 0.0, pull_epochs: int = 1,
                 merge: bool = False, seed: int = 0, parent: dict | None = None, on_iteration=None):
        self.start, self.space, self.s = start, space, setting
        self.epochs, self.max_iterations, self.min_channels = epochs, max_iterations, min_channels
        self.pull_weight, self.pull_epochs, self.merge = pull_weight, pull_epochs, merge
        self.seed, self.parent, self.on_iteration = seed, parent or {}, on_iteration

    def settings(self) -> dict:
        return {"stage": 2, "epochs": self.epochs, "max_iterations": self.max_iterations,
                "min_channels": self.min_channels, "pull_weight": self.pull_weight, "pull_epochs": self.pull_epochs,
                "merge": self.merge, "seed": self.seed, "parent": self.parent, **self.s.describe()}

    def _evaluate(self, encoding):
        plan = self.space.decode(encoding)
        seed = _seed(self.seed, encoding)
        model = copy.deepcopy(self.start.model)
        trajs, best = dict(self.start.trajectories), self.start.best_acc
        kept, kept_metrics, kept_it = copy.deepcopy(model), dict(self.start.metrics), 0
        log, others = [], []
        for it in range(1, self.max_iterations + 1):
            removed = self._prune_once(model, trajs, plan["shares"], seed + it)
            if not removed:
                break
            trajs = finetune_recording(model, self.s, self.epochs, seed=seed + 100 * it)
            acc = 1.0 - self.s.error(model)
            metrics = {"error": 1.0 - acc, **self.s.measure(model)}
            ok = acc >= best - plan["tolerance"] / 100.0
            log.append({"iteration": it, "removed": removed, "val_acc": acc, "kept": ok, **metrics})
            if not ok:
                others.append((it, model, metrics, ok))
                break
            if kept_it:
                others.append((kept_it, kept, kept_metrics, True))
            best = max(best, acc)
            kept, kept_metrics, kept_it = copy.deepcopy(model), metrics, it
        if self.on_iteration is not None:
            # the intermediate networks are candidates too; the returned one is archived by the problem
            for it, net, metrics, ok in others:
                self.on_iteration(list(encoding), it, net, metrics, ok)
        extra = {"stage": 2, "iterations": kept_it, "log": log, "parent": self.parent.get("id")}
        return kept_metrics, kept.natkit_arch, extra, kept

    def _prune_once(self, model, trajs, shares, seed) -> dict:
        from natkit.prune.similarity import (conv_channel_groups, filters_to_remove, l1_over_epochs,
                                             merge_into_kept, most_similar_pairs, pull_together_loss,
                                             trajectory_similarity)

        groups = conv_channel_groups(model, self.s.example, min_channels=self.min_channels)
        chosen = []
        for g in groups:
            share, traj = shares.get(g.name, 0.0), trajs.get(g.name)
            if share <= 0 or traj is None or traj.shape[1] != g.n_channels:
                continue
            n = int(round(share * min(g.n_channels // 2, g.n_channels - self.min_channels)))
            pairs = most_similar_pairs(trajectory_similarity(traj), n)
            if pairs:
                chosen.append((g, pairs, l1_over_epochs(traj)))
        if not chosen:
            return {}
        if self.pull_weight > 0:
            gs, ps = [c[0] for c in chosen], [c[1] for c in chosen]
            self.s.fit(model, self.pull_epochs, seed=seed, lr=self.s.finetune_lr, schedule="constant",
                       loss_hook=lambda _m, _logits, _y: pull_together_loss(gs, ps, self.pull_weight))
        plan, removed = {}, {}
        for g, pairs, l1 in chosen:
            if self.merge:
                merge_into_kept(g, pairs, l1)
            plan[g.root] = filters_to_remove(pairs, l1)
            removed[g.name] = len(plan[g.root])
        remove_channels(model, plan, self.s.example)
        return removed


def finetune_recording(model: nn.Module, s: Setting, epochs: int, *, seed: int) -> dict:
    """Fine-tune every layer ``epochs`` epochs, snapshotting every conv group after each epoch."""
    from natkit.prune.similarity import TrajectoryRecorder, conv_channel_groups

    unfreeze(model)
    recorder = TrajectoryRecorder(conv_channel_groups(model, s.example))
    for e in range(max(1, int(epochs))):
        s.fit(model, 1, seed=seed + e, lr=s.finetune_lr, schedule="constant")
        recorder.record()
    return {g.name: recorder.trajectory(i) for i, g in enumerate(recorder.groups)}


def knee(cands, objectives) -> object:
    """The front member nearest the ideal point once every objective is scaled to [0, 1]."""
    from natkit.core.archive import nondominated

    F = np.array([[float(c.metric(o)) for o in objectives] for c in cands], dtype=float)
    front = nondominated(F)
    Z = F[front]
    Z = (Z - Z.min(0)) / np.maximum(Z.max(0) - Z.min(0), 1e-12)
    return cands[front[int(np.argmin(np.linalg.norm(Z, axis=1)))]]


# --------------------------------------------------------------------------------------------
# The method: natkit search tascnet
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    model: str = "vgg_small"
    resolution: int | None = None  # default: the source task's image size
    pretrain_epochs: float = 3
    pretrain_samples: int | None = 1000  # per class of the source task
    head_epochs: float = 2
    k: str = "auto"  # an int, or "auto" (grow from 1 while the best val accuracy improves)
    k_max: int = 4
    kernels: str = "1,3,5"
    epochs: float = 3  # E: stage-1 training of each candidate
    lr: float = 0.05
    finetune_lr: float = 0.01
    batch_size: int = 64
    max_batches: int | None = None
    choose: str = "knee"  # knee | best | a candidate id
    s2_epochs: int = 2  # fine-tuning epochs per stage-2 iteration (also the recorded trajectory length)
    s2_iterations: int = 4
    s2_generations: int | None = None
    s2_pop_size: int | None = None
    min_filters: int | None = None  # layers with at most this many filters are left alone
    pull_weight: float = 0.0  # lambda of CE + lambda * exp(-sum cos)
    merge: bool = False
    weights: str | None = None  # a source weights file (safetensors / state dict) instead of pretraining

    @classmethod
    def from_ctx(cls, ctx) -> "Options":
        from dataclasses import fields

        from natkit.errors import ConfigError as _CE

        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(ctx.options) - set(known) - {"space"})
        if unknown:
            raise _CE(f"unknown tascnet option {unknown[0]!r}; known: {', '.join(known)}")
        out = cls()
        if ctx.quick:
            out = cls(pretrain_epochs=3, pretrain_samples=500, head_epochs=2, k="1", epochs=2, max_batches=100,
                      s2_epochs=2, s2_iterations=2, s2_generations=1, s2_pop_size=3)
        casts = {"model": str, "k": str, "kernels": str, "choose": str, "merge": bool, "weights": str}
        for name, f in known.items():
            if name not in ctx.options:
                continue
            cast = casts.get(name) or (float if "float" in str(f.type) else int)
            setattr(out, name, ctx.option(name, cast=cast))
        if out.kernels not in KERNEL_DOMAINS:
            raise _CE(f"option kernels={out.kernels!r}: use one of {', '.join(KERNEL_DOMAINS)}")
        if out.k != "auto" and (not out.k.isdigit() or int(out.k) < 1):
            raise _CE(f"option k={out.k!r}: use a positive integer or 'auto'")
        return out


def run(ctx) -> None:
    import time

    t0 = time.perf_counter()
    o = Options.from_ctx(ctx)
    if ctx.quick:
        ctx.generations, ctx.pop_size = min(ctx.generations, 2), min(ctx.pop_size, 4)
    # quick: a smaller source validation split (pretraining reports its error on all of it)
    source = ctx.source_task(samples_per_class=o.pretrain_samples, **({"val_fraction": 0.05} if ctx.quick else {}))
    resolution = o.resolution or max(source.image_size, 8)
    channels = source.in_channels
    ctx.log(f"source {source.spec} ({len(source.train)} train images) -> target {ctx.task.spec}, "
            f"{o.model} at {resolution}px")
    base = _source_model(o, source, resolution, channels, ctx)
    s = Setting(ctx.task, resolution, channels, ctx.device, o.lr, o.finetune_lr, o.batch_size, o.max_batches,
                latency="latency_ms" in ctx.objectives)
    head = transfer_head(base, s, epochs=o.head_epochs, seed=ctx.seed)
    head.natkit_source = getattr(base, "natkit_source", {})
    head_metrics = {"error": s.error(head), **s.measure(head)}
    cid = ctx.archive.add(ctx.run_id, ctx.method, generation=0, encoding=[1, 0], arch=head.natkit_arch,
                          metrics=head_metrics, extra={"stage": 1, "k": 0, "note": "new head only"},
                          eval_key=ctx.eval_key({"stage": 1, "k": 0, **s.describe(), "seed": ctx.seed}))
    ctx.save_model(cid, unfreeze(copy.deepcopy(head)))
    ctx.log(f"head-only transfer: val error {head_metrics['error']:.4f}")

    n_layers = len(meaningful_layers(head, s.example)) - 1
    ks = [min(int(o.k), n_layers)] if o.k != "auto" else list(range(1, min(o.k_max, n_layers) + 1))
    bounds = ctx.bounds(_maxima(head, s, max(ks), o))
    evaluators, best_prev = {}, 1.0 - head_metrics["error"]
    for k in ks:
        slots = layer_slots(head, s.example, k, kernels=KERNEL_DOMAINS[o.kernels])
        space = Stage1Space(slots, k)
        ev = Stage1Evaluator(head, space, s, epochs=o.epochs, seed=ctx.seed, base_arch=base.natkit_arch)
        evaluators[k] = ev
        problem = ctx.problem(space, ev)
        ctx.minimize(problem, bounds, algorithm=nsga2(ctx.pop_size))
        accs = [1.0 - m["error"] for _, m, st in problem.history if st == "ok"]
        best_k = max(accs, default=0.0)
        ctx.log(f"stage 1, k={k}: {problem.n_real} trained, best val accuracy {best_k:.4f}")
        ctx.stats.setdefault("stage1", []).append({"k": k, "evaluated": len(problem.history),
                                                   "real": problem.n_real, "best_val_acc": best_k})
        if o.k == "auto" and best_k <= best_prev:
            break  # AutoTune: stop growing k once the best accuracy no longer improves
        best_prev = max(best_prev, best_k)

    stage1 = [c for c in ctx.archive.candidates(method=ctx.method, run_id=ctx.run_id, status="ok")
              if c.extra.get("stage") == 1]
    parent = _choose(stage1, o.choose, ctx.objectives, ctx.archive)
    ctx.log(f"stage 2 starts from candidate {parent.id} (k={parent.extra.get('k')}, val error {parent.error:.4f})")
    model = _parent_model(ctx, parent, evaluators, head)
    t1 = time.perf_counter()
    _stage2(ctx, o, s, model, parent, bounds)
    t2 = time.perf_counter()
    front = ctx.finalize()
    ctx.stats["seconds"] = {"source_and_stage1": round(t1 - t0, 1), "stage2": round(t2 - t1, 1),
                            "finalize": round(time.perf_counter() - t2, 1)}
    ctx.stats["front"] = [{"id": c.id, "stage": c.extra.get("stage"), "error": c.error, "test_error": c.test_error,
                           "params": c.params, "macs": c.macs} for c in front]


def nsga2(pop_size: int, sampling=None):
    """NSGA-II for any number of objectives (the issue asks for NSGA-II in both stages), with the
    integer operators the core uses (SBX/PM on floats, rounded)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    return NSGA2(pop_size=pop_size, sampling=sampling if sampling is not None else IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)


def _source_model(o, source, resolution, channels, ctx) -> nn.Module:
    """The pretrained source network: natkit's cached pretraining, or the user's weights file."""
    from natkit.train import pretrained

    if not o.weights:
        return pretrained(o.model, source, epochs=o.pretrain_epochs, resolution=resolution, seed=ctx.seed,
                          device=ctx.device, in_channels=channels)
    from natkit.nets import create_model
    from natkit.nets.io import load_state_dict_file, resize_to_state_dict

    state = load_state_dict_file(o.weights)
    model = create_model(o.model, num_classes=source.num_classes, in_channels=channels)
    resize_to_state_dict(model, state)  # e.g. a 1000-class head; it is replaced for the target anyway
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"weights {o.weights} do not fit {o.model}: {str(exc).splitlines()[0]}") from None
    model.natkit_source = {"path": str(o.weights)}
    return model


def _maxima(head, s, k, o) -> dict:
    """Objective bounds for hypervolume: the larger of the source net and the widest stage-1 candidate."""
    slots = layer_slots(head, s.example, k, kernels=KERNEL_DOMAINS[o.kernels])
    widest = rebuild(head, decode_genome(slots, genome_bounds(slots)[1]), s.example, s.task.num_classes)
    a, b = s.measure(head), s.measure(widest)
    return {key: max(a[key], b[key]) for key in a}


def _choose(cands, how, objectives, archive):
    if not cands:
        raise ConfigError("stage 1 produced no successful candidate to compress")
    if how == "knee":
        return knee(cands, objectives)
    if how == "best":
        return min(cands, key=lambda c: (c.error, c.macs))
    if not str(how).isdigit():
        raise ConfigError(f"option choose={how!r}: use knee, best or a candidate id")
    c = archive.get(int(how))
    if c.method != "tascnet" or c.extra.get("stage") != 1 or c.status != "ok":
        raise ConfigError(f"candidate {how} is not a successful TASCNet stage-1 candidate")
    return c


def _parent_model(ctx, parent, evaluators, head) -> nn.Module:
    """The chosen stage-1 network with its trained weights: from the run's model store, else retrained
    with the candidate's own seed (training is deterministic per encoding)."""
    from natkit.nets.io import load_model

    d = ctx.model_dir / str(parent.id)
    if (d / "arch.json").is_file():
        return unfreeze(load_model(d))
    k = parent.extra.get("k", 0)
    if k == 0:
        return unfreeze(copy.deepcopy(head))
    ev = evaluators.get(k)
    if ev is None:
        raise ConfigError(f"cannot restore candidate {parent.id}: no stored weights and k={k} was not searched")
    return unfreeze(ev.train_candidate(parent.encoding))


def _stage2(ctx, o, s, model, parent, bounds) -> None:
    from natkit.prune.similarity import conv_channel_groups

    widest = max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=0)
    min_channels = o.min_filters if o.min_filters is not None else max(2, int(round(64 * widest / 512)))
    parent_acc = 1.0 - parent.error
    trajs = finetune_recording(model, s, o.s2_epochs, seed=ctx.seed)
    start_metrics = {"error": s.error(model), **s.measure(model)}
    start = Stage2Start(model, trajs, max(parent_acc, 1.0 - start_metrics["error"]), start_metrics)
    settings0 = {"stage": 2, "parent": parent.id, "s2_epochs": o.s2_epochs, **s.describe(), "seed": ctx.seed}
    cid = ctx.archive.add(ctx.run_id, ctx.method, generation=0, encoding={"stage": 2, "iteration": 0},
                          arch=model.natkit_arch, metrics=start_metrics, eval_key=ctx.eval_key(settings0),
                          extra={"stage": 2, "iterations": 0, "parent": parent.id, "note": "fine-tuned, unpruned"})
    ctx.save_model(cid, model)
    names = [g.name for g in conv_channel_groups(model, s.example, min_channels=min_channels)]
    if not names:
        ctx.log(f"stage 2: no conv layer has more than {min_channels} filters; nothing to compress")
        return
    space = Stage2Space(names)
    holder = {}

    def on_iteration(encoding, it, net, metrics, kept):
        problem = holder["problem"]
        c = ctx.archive.add(ctx.run_id, ctx.method, generation=problem.generation,
                            encoding={"stage": 2, "x": encoding, "iteration": it}, arch=net.natkit_arch,
                            metrics=metrics, eval_key=problem.eval_key + "-iter",
                            extra={"stage": 2, "iteration": it, "within_tolerance": kept, "parent": parent.id})
        ctx.save_model(c, net)

    ev = Stage2Evaluator(start, space, s, epochs=o.s2_epochs, max_iterations=o.s2_iterations,
                         min_channels=min_channels, pull_weight=o.pull_weight, merge=o.merge, seed=ctx.seed,
                         parent={"id": parent.id, "encoding": parent.encoding}, on_iteration=on_iteration)
    problem = ctx.problem(space, ev)
    holder["problem"] = problem
    pop = o.s2_pop_size or ctx.pop_size
    rng = np.random.default_rng(ctx.seed)
    # the paper's own setting (same share everywhere, 2-point tolerance) seeds the population
    X = np.vstack([space.default(), rng.integers(space.xl, space.xu + 1, size=(pop - 1, space.n_var))])
    algorithm = nsga2(pop, sampling=X)
    ctx.minimize(problem, bounds, algorithm=algorithm, generations=o.s2_generations or ctx.generations)
    ctx.stats["stage2"] = {"parent": parent.id, "groups": names, "min_filters": min_channels,
                           "evaluated": len(problem.history), "real": problem.n_real}
