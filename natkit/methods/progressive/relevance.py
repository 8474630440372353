"""Kernel relevance criteria for layer-by-layer simplification (Osaku, Gomes, Falcão 2021).

A criterion scores every kernel (output filter) of one convolution; higher means more relevant, and the
simplification eliminates the lowest-ranked kernels. The paper's own objective formula is not public,
so the criteria are pluggable; each is documented on its function. They read a kernel's *activation*,
i.e. the map the next layer actually receives: conv -> (BatchNorm) -> (ReLU) when those follow the conv.
Scores are computed on a fixed list of ``(x, y)`` batches chosen by the caller (the same images for
every kernel and every criterion, so rankings are comparable and reproducible).

Registered criteria (``list_criteria()``):

- ``mean_abs``       mean absolute activation over images and positions (a silent map carries little).
- ``apoz``           1 - APoZ, the Average Percentage of Zeros of the post-ReLU map (Hu et al. 2016):
                     a kernel that is zero on most positions of most images is rarely used.
- ``discriminative`` class-discriminative power of the kernel's globally average-pooled activation:
                     Fisher ratio of between-class to within-class variance over the labelled images.
- ``loss_increase``  increase of the cross-entropy loss on the fixed images when the kernel's activation
                     is zeroed (exactly what removing the kernel does to the next layer's input, before
                     any retraining).
- ``l1``             L1 norm of the kernel's weights (data-free; the magnitude baseline's criterion).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.core.registry import Registry
from natkit.errors import ConfigError

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]
CriterionFn = Callable[..., np.ndarray]

criteria = Registry("relevance criterion")
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish)


def register_criterion(name: str):
    def deco(fn: CriterionFn) -> CriterionFn:
        if name in criteria:
            raise ValueError(f"relevance criterion {name!r} registered twice")
        criteria.add(name, fn)
        return fn

    return deco


def list_criteria() -> list[str]:
    return sorted(criteria.names())


def get_criterion(name: str) -> CriterionFn:
    return criteria.get(name)


def score_kernels(model: nn.Module, layer: nn.Conv2d, batches: Batches, criterion: str = "mean_abs",
                  **kw) -> np.ndarray:
    """Relevance of each output kernel of ``layer`` (shape ``(out_channels,)``, higher = keep)."""
    fn = get_criterion(criterion)
    if not isinstance(layer, nn.Conv2d):
        raise ConfigError(f"relevance is defined for Conv2d kernels, got {type(layer).__name__}")
    if fn is not criteria.get("l1") and not batches:
        raise ConfigError(f"criterion {criterion!r} needs at least one batch of images")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            scores = np.asarray(fn(model, layer, batches, **kw), dtype=np.float64)
    finally:
        model.train(was_training)
    if scores.shape != (layer.out_channels,):
        raise AssertionError(f"criterion {criterion!r} returned shape {scores.shape}")
    # a NaN score would sort arbitrarily; treat it as "no evidence of relevance"
    return np.nan_to_num(scores, nan=-np.inf)


def n_to_eliminate(n_kernels: int, share: float) -> int:
    """Kernels removed for an elimination share; at least one kernel always survives."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"elimination share must lie in [0, 1], got {share}")
    return min(int(round(share * n_kernels)), n_kernels - 1)


def lowest_ranked(scores: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` least relevant kernels (ties broken by lower index)."""
    order = np.argsort(np.asarray(scores), kind="stable")
    return sorted(int(i) for i in order[:n])


# --------------------------------------------------------------------------------------------
# where a kernel's activation is read


def activation_point(model: nn.Module, layer: nn.Conv2d) -> tuple[nn.Module, bool]:
    """The module whose output is ``layer``'s activation, and whether a ReLU must still be applied.

    In a Sequential (VGG) the conv is followed by BN and an activation module: hook the last of them.
    Elsewhere (ResNet blocks call a shared ``relu`` functionally) hook the BN registered right after the
    conv when it matches, and apply ReLU in the hook, which is what every natkit network does next.
    """
    for parent in model.modules():
        if isinstance(parent, nn.Sequential):
            children = list(parent)
            for i, child in enumerate(children):
                if child is layer:
                    point = layer
                    for nxt in children[i + 1:]:
                        if isinstance(nxt, nn.BatchNorm2d) and point is layer:
                            point = nxt
                        elif isinstance(nxt, _ACTIVATIONS):
                            return nxt, False
                        else:
                            break
                    return point, False
    modules = list(model.modules())
    for i, m in enumerate(modules):
        if m is layer and i + 1 < len(modules):
            nxt = modules[i + 1]
            if isinstance(nxt, nn.BatchNorm2d) and nxt.num_features == layer.out_channels:
                return nxt, True
    return layer, False


def _stream(model: nn.Module, layer: nn.Conv2d, batches: Batches,
            visit: Callable[[torch.Tensor, torch.Tensor], None]) -> None:
    """Run the batches and hand each batch's activation of ``layer`` (N, C, H, W) to ``visit``."""
    point, relu = activation_point(model, layer)
    state: dict = {}

    def hook(_m, _inp, out):
        state["act"] = F.relu(out) if relu else out.detach().clone()

    handle = point.register_forward_hook(hook)
    try:
        for x, y in batches:
            model(x)
            visit(state.pop("act"), y)
    finally:
        handle.remove()


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------
# criteria


@register_criterion("mean_abs")
def mean_abs_activation(model, layer, batches, **_):
    """Mean of |a| over images and spatial positions, per kernel."""
    total = torch.zeros(layer.out_channels, dtype=torch.float64)
    count = 0

    def visit(a, _y):
        nonlocal count
        total.add_(a.abs().double().sum(dim=(0, 2, 3)).cpu())
        count += a.shape[0] * a.shape[2] * a.shape[3]

    _stream(model, layer, batches, visit)
    return (total / max(count, 1)).numpy()


@register_criterion("apoz")
def apoz_relevance(model, layer, batches, **_):
    """1 - APoZ: share of positive (non-zero after ReLU) activations over images and positions."""
    positive = torch.zeros(layer.out_channels, dtype=torch.float64)
    count = 0

    def visit(a, _y):
        nonlocal count
        positive.add_((a > 0).double().sum(dim=(0, 2, 3)).cpu())
        count += a.shape[0] * a.shape[2] * a.shape[3]

    _stream(model, layer, batches, visit)
    return (positive / max(count, 1)).numpy()


def pooled_activations(model, layer, batches) -> tuple[np.ndarray, np.ndarray]:
    """Globally average-pooled activation of every kernel on every image: ``(N, C)`` and labels ``(N,)``."""
    pooled, labels = [], []

    def visit(a, y):
        pooled.append(a.double().mean(dim=(2, 3)).cpu())
        labels.append(y.cpu())

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _stream(model, layer, batches, visit)
    finally:
        model.train(was_training)
    return torch.cat(pooled).numpy(), torch.cat(labels).numpy()


def fisher_ratio(features: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per column: between-class variance / within-class variance (both weighted by class size)."""
    features = np.asarray(features, dtype=np.float64)
    mu = features.mean(axis=0)
    between = np.zeros(features.shape[1])
    within = np.zeros(features.shape[1])
    for c in np.unique(labels):
        fc = features[labels == c]
        mc = fc.mean(axis=0)
        between += len(fc) * (mc - mu) ** 2
        within += ((fc - mc) ** 2).sum(axis=0)
    return between / (within + eps)


@register_criterion("discriminative")
def discriminative_power(model, layer, batches, **_):
    """Fisher ratio of the kernel's pooled activation across the classes of the labelled images."""
    pooled, labels = pooled_activations(model, layer, batches)
    if len(np.unique(labels)) < 2:
        raise ConfigError("criterion 'discriminative' needs images of at least two classes")
    return fisher_ratio(pooled, labels)


@register_criterion("loss_increase")
def loss_increase(model, layer, batches, *, loss_fn: Callable | None = None, **_):
    """Loss with the kernel's activation zeroed minus the intact loss, on the fixed images."""
    loss_fn = loss_fn or nn.CrossEntropyLoss(reduction="sum")
    point, _relu = activation_point(model, layer)
    zeroed: dict = {"k": None}

    def hook(_m, _inp, out):
        k = zeroed["k"]
        if k is None:
            return None
        out = out.clone()
        out[:, k] = 0.0
        return out

    suffix = _vgg_suffix(model, point)
    if suffix is not None:
        # chain network: compute the activation once per batch, re-run only the layers after it
        inputs = []
        handle = point.register_forward_hook(lambda _m, _i, out: inputs.append(out.detach().clone()))
        try:
            for x, _ in batches:
                model(x)
        finally:
            handle.remove()

        def total_loss() -> float:
            s, n = 0.0, 0
            for a, (_, y) in zip(inputs, batches):
                if zeroed["k"] is not None:
                    a = a.clone()
                    a[:, zeroed["k"]] = 0.0
                s += float(loss_fn(suffix(a), y))
                n += len(y)
            return s / max(n, 1)

        base = total_loss()
        out = np.empty(layer.out_channels)
        for k in range(layer.out_channels):
            zeroed["k"] = k
            out[k] = total_loss() - base
        return out

    def total_loss() -> float:
        s, n = 0.0, 0
        for x, y in batches:
            s += float(loss_fn(model(x), y))
            n += len(y)
        return s / max(n, 1)

    handle = point.register_forward_hook(hook)
    try:
        base = total_loss()
        out = np.empty(layer.out_channels)
        for k in range(layer.out_channels):
            zeroed["k"] = k
            out[k] = total_loss() - base
    finally:
        handle.remove()
    return out


def _vgg_suffix(model: nn.Module, point: nn.Module):
    """For natkit's VGG (features -> pool -> classifier): the function from ``point``'s output to the logits."""
    from natkit.nets.vgg import VGG

    if type(model).forward is not VGG.forward:
        return None
    feats = list(model.features)
    idx = next((i for i, m in enumerate(feats) if m is point), None)
    if idx is None:
        return None
    rest = nn.Sequential(*feats[idx + 1:])
    return lambda a: model.classifier(model.pool(rest(a)))


@register_criterion("l1")
def l1_norm(model, layer, batches=None, **_):
    """L1 norm of each kernel's weights."""
    return layer.weight.detach().abs().sum(dim=(1, 2, 3)).double().cpu().numpy()


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Convolutions in forward (registration) order, with their module names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def as_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split fixed tensors into a reusable list of batches."""
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


__all__: Iterable[str] = [
    "register_criterion", "list_criteria", "get_criterion", "score_kernels", "n_to_eliminate",
    "lowest_ranked", "activation_point", "pooled_activations", "fisher_ratio", "conv_layers", "as_batches",
]
