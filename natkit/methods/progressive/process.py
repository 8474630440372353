"""Progressive retraining's process: layer bookkeeping, physical elimination of kernels, and
retraining of layers 1..l+1 with every later layer frozen (see progressive.py for the method)."""

from __future__ import annotations

import copy

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.methods.progressive.relevance import as_batches, lowest_ranked, n_to_eliminate, score_kernels
from natkit.utils.seed import derive_seed

METHOD = "progressive"
# lowest mean validation error among the four objective criteria in benchmarks.progressive.benchmark
# (results/progressive/criteria.json; digits, 10 seeds x 2 shares = 20 runs each, lr 0.05, chosen with the
# frozen layers' BatchNorm statistics updated): apoz 0.96%, loss_increase 0.99%, mean_abs 1.10%,
# discriminative 1.20%. apoz scores each kernel by how often its ReLU output is positive on the fixed subset.
DEFAULT_CRITERION = "apoz"
# BatchNorm running statistics of the frozen (later) layers during retraining. Their weights and affine
# parameters never change; "update" would let their running statistics follow the inputs that the retrained
# earlier layers now produce, "frozen" keeps the statistics they were trained with. benchmarks.progressive
# .benchmark --part bn (at apoz; mean validation error, update minus frozen): digits +0.12 points (0.96% vs
# 0.84%, 20 runs), Fashion-MNIST +0.04 (12 runs). Neither margin is significant; the rule takes the lower.
DEFAULT_BN_STATS = "frozen"


# --------------------------------------------------------------------------------------------
# layers of a chain CNN


@dataclass(frozen=True)
class Layer:
    """One weight layer (conv or linear) and the modules that belong to it (its BatchNorm)."""

    index: int
    name: str
    module: nn.Module
    members: tuple  # (name, module) of the weight layer and its BN

    @property
    def is_conv(self) -> bool:
        return isinstance(self.module, nn.Conv2d)


def weight_layers(model: nn.Module) -> list[Layer]:
    """Conv/Linear layers in forward order, each with the BatchNorm registered right after it.

    Registration order is forward order in the chain networks this method applies to (VGG).
    """
    groups: list[list] = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            groups.append([(name, m)])
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and groups:
            groups[-1].append((name, m))
    return [Layer(i, g[0][0], g[0][1], tuple(g)) for i, g in enumerate(groups)]


def conv_indices(layers: list[Layer]) -> list[int]:
    return [l.index for l in layers if l.is_conv]


def check_chain(model: nn.Module) -> None:
    """Progressive retraining needs a plain chain: every conv feeds exactly the next weight layer."""
    arch = getattr(model, "natkit_arch", {}) or {}
    name = str(arch.get("name", ""))
    plain = hasattr(model, "features") and hasattr(model, "classifier")
    if not plain or not (name.startswith("vgg") or name.startswith("tv_vgg") or not name):
        raise ConfigError(f"progressive retraining needs a chain CNN (the VGG family), got {name or type(model).__name__!r}")


def retrain_scope(model: nn.Module, conv_position: int) -> tuple[list[nn.Module], list[nn.Module]]:
    """(trainable, frozen) modules for the retraining after simplifying conv number ``conv_position``.

    Trainable: weight layers 1..l+1 (l+1 = the next conv, or the head's first Linear after the last conv).
    """
    layers = weight_layers(model)
    convs = conv_indices(layers)
    if not 0 <= conv_position < len(convs):
        raise ConfigError(f"conv position {conv_position} out of range (model has {len(convs)} convs)")
    last = convs[conv_position] + 1  # the next weight layer
    trainable = [m for l in layers if l.index <= last for _, m in l.members]
    frozen = [m for l in layers if l.index > last for _, m in l.members]
    return trainable, frozen


@contextlib.contextmanager
def frozen_layers(modules: list[nn.Module], bn_stats: str = DEFAULT_BN_STATS):
    """No gradients for these modules' parameters; inference-mode forward for all but, with
    ``bn_stats="update"``, their BatchNorms.

    ``bn_stats="update"`` lets the frozen BatchNorms keep estimating running statistics (affine
    weights stay frozen); ``"frozen"`` (the default) keeps every tensor of their state. The benchmark compares
    both.
    """
    if bn_stats not in ("frozen", "update"):
        raise ConfigError(f"bn_stats must be 'frozen' or 'update', got {bn_stats!r}")
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters(recurse=False)]
    for p, _ in saved:
        p.requires_grad_(False)

    def force_eval(mod, _inp):
        mod.training = False

    handles = [m.register_forward_pre_hook(force_eval) for m in modules
               if bn_stats == "frozen" or not isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved:
            p.requires_grad_(flag)


# --------------------------------------------------------------------------------------------
# the process


@dataclass(frozen=True)
class Retraining:
    """Everything that fixes one retraining step (a TrainConfig plus where the task's images go)."""

    cfg: object  # natkit.train.TrainConfig
    resolution: int | None = None
    channels: int | None = None
    device: str = "cpu"
    bn_stats: str = DEFAULT_BN_STATS  # BatchNorm statistics of frozen layers: "frozen" or "update"


@dataclass
class LayerStep:
    position: int  # conv position in forward order (0-based)
    name: str
    kernels_before: int
    eliminated: list[int]
    source: str  # criterion name, "human", or "given"
    scores: list[float] | None = None
    trained: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def example_input(channels: int, resolution: int) -> torch.Tensor:
    return torch.zeros(1, channels, resolution, resolution)


def eliminate(model: nn.Module, conv: nn.Conv2d, kernels: list[int], example: torch.Tensor) -> nn.Module:
    """Physically remove ``kernels`` of ``conv`` and the next layer's matching inputs (Torch-Pruning)."""
    from natkit.prune.surgery import remove_channels

    if not kernels:
        return model
    return remove_channels(model, {conv: sorted(int(k) for k in kernels)}, example)


def retrain_upto(model: nn.Module, conv_position: int, task, rt: Retraining, *, seed: int) -> tuple[list[str], list[float]]:
    """Train weight layers 1..l+1 with every later layer frozen; returns (trained module names, losses)."""
    from natkit.train import train

    trainable, frozen = retrain_scope(model, conv_position)
    names = {id(m): n for n, m in model.named_modules()}
    params = [p for m in trainable for p in m.parameters(recurse=False)]
    with frozen_layers(frozen, rt.bn_stats):
        losses = train(model, task, rt.cfg, device=rt.device, resolution=rt.resolution, channels=rt.channels,
                       params=params, seed=seed)
    return [names[id(m)] for m in trainable], [float(v) for v in losses]


Decide = Callable[[int, str, nn.Conv2d, nn.Module], list[int]]


def simplify(model: nn.Module, task, shares: list[float] | None, rt: Retraining, *, criterion: str = DEFAULT_CRITERION,
             score_batches=None, decide: Decide | None = None, seed: int = 0, start: int = 0,
             on_layer: Callable[[int, LayerStep, nn.Module], None] | None = None) -> list[LayerStep]:
    """Run the progressive process in place from conv position ``start``.

    Either ``shares`` (one elimination share per conv layer, kernels chosen by ``criterion`` on
    ``score_batches``) or ``decide(position, name, conv, model) -> kernels`` (a person, or a fixed plan)
    selects the kernels. The retraining seed of layer l depends only on ``seed`` and the decisions for
    layers 1..l, so equal prefixes give equal intermediate states.
    """
    convs = [(l.name, l.module) for l in weight_layers(model) if l.is_conv]
    if shares is not None and len(shares) != len(convs):
        raise ConfigError(f"need one elimination share per conv layer ({len(convs)}), got {len(shares)}")
    if decide is None and shares is None:
        raise ConfigError("simplify needs shares or a decide function")
    if decide is not None and start:
        raise ConfigError("a decide function runs the process from the first layer")
    channels = rt.channels or task.in_channels
    example = example_input(channels, rt.resolution or task.image_size)
    steps: list[LayerStep] = []
    prefix: list = []  # what was decided so far; seeds the retraining of each layer
    for pos in range(start, len(convs)):
        name = convs[pos][0]
        conv = dict(model.named_modules())[name]
        n_before = conv.out_channels
        t0 = time.perf_counter()
        scores = None
        if decide is not None:
            kernels = sorted(set(int(k) for k in decide(pos, name, conv, model)))
            source = "human" if shares is None else "given"
            prefix.append(kernels)
        else:
            n = n_to_eliminate(n_before, shares[pos])
            source, kernels = criterion, []
            if n:
                s = score_kernels(model, conv, score_batches, criterion)
                scores = [float(v) for v in s]
                kernels = lowest_ranked(s, n)
            prefix = [float(v) for v in shares[:pos + 1]]
        if kernels and (min(kernels) < 0 or max(kernels) >= n_before or len(kernels) >= n_before):
            raise ConfigError(f"layer {name}: cannot eliminate kernels {kernels} of {n_before} (one must stay)")
        step = LayerStep(pos, name, n_before, kernels, source, scores)
        if kernels:
            eliminate(model, conv, kernels, example)
            step.trained, step.losses = retrain_upto(model, pos, task, rt, seed=derive_seed(seed, pos, prefix))
        step.seconds = time.perf_counter() - t0
        steps.append(step)
        if on_layer is not None:
            on_layer(pos, step, model)
    return steps


def fixed_subset(task, n_images: int, *, resolution=None, channels=None, seed: int = 0, split: str = "train",
                 batch_size: int = 128) -> list:
    """The fixed, seeded, class-mixed images every relevance score of a run is computed on."""
    xs, ys = [], []
    for x, y in task.batches(split, batch_size, resolution=resolution, channels=channels, shuffle=True,
                             seed=seed, limit=n_images):
        xs.append(x)
        ys.append(y)
    return as_batches(torch.cat(xs), torch.cat(ys), batch_size)


def pruned_arch(model: nn.Module) -> dict:
    """The model's registry description with the VGG ``cfg`` rewritten to its current widths."""
    arch = copy.deepcopy(getattr(model, "natkit_arch", None) or {"name": type(model).__name__, "kwargs": {}})
    cfg = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            cfg.append(int(m.out_channels))
        elif isinstance(m, nn.MaxPool2d):
            cfg.append("M")
    arch.setdefault("kwargs", {})["cfg"] = cfg
    return arch


def conv_widths(model: nn.Module) -> list[int]:
    return [int(l.module.out_channels) for l in weight_layers(model) if l.is_conv]


def measure_state(model: nn.Module, task, rt: Retraining, objectives=("error", "macs")) -> dict:
    """Validation ``error``, ``params``, ``macs`` (+ ``latency_ms`` when it is an objective)."""
    from natkit.measure import measure
    from natkit.train import evaluate

    res = rt.resolution or task.image_size
    ch = rt.channels or task.in_channels
    m = measure(model, res, ch, latency="latency_ms" in objectives, device=rt.device)
    m["error"] = evaluate(model, task, "val", device=rt.device, resolution=rt.resolution, channels=rt.channels)["error"]
    return m
