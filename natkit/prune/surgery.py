"""Physical channel removal with Torch-Pruning's dependency graph, and its magnitude baselines.

Torch-Pruning traces the network once and removes every coupled channel: the next layer's input
channels, batch norm, residual-join partners and DenseNet concat slices. natkit never edits weight
tensors by hand for structural pruning.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.measure.counts import count_macs_for_input, count_params


def _tp():
    import torch_pruning as tp

    return tp


def output_layer(model: nn.Module) -> nn.Module:
    """The classifier output layer (the last Linear), never pruned."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ConfigError("model has no Linear output layer")
    return last


class _AllTrainable:
    """Torch-Pruning traces through autograd: frozen layers would be invisible to it."""

    def __init__(self, model):
        self.model = model
        self.names = {n for n, p in model.named_parameters() if not p.requires_grad}

    def __enter__(self):
        for n, p in self.model.named_parameters():
            if n in self.names:
                p.requires_grad_(True)

    def __exit__(self, *exc):
        # pruning swaps Parameter objects, so freeze again by name
        for n, p in self.model.named_parameters():
            if n in self.names:
                p.requires_grad_(False)


def dependency_graph(model: nn.Module, example_input: torch.Tensor):
    """The one way natkit builds Torch-Pruning's dependency graph: traced in eval mode with every parameter
    requiring grad (frozen layers would otherwise be invisible to the autograd trace), flags and mode
    restored after."""
    tp = _tp()
    was_training = model.training
    try:
        model.eval()
        with _AllTrainable(model):
            return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    finally:
        model.train(was_training)


def prunable_layers(model: nn.Module, example_input: torch.Tensor) -> list[nn.Module]:
    """Conv and hidden linear layers whose output channels may be removed, in forward order."""
    head = output_layer(model)
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not head
            and (not isinstance(m, nn.Conv2d) or m.groups == 1)]


def remove_channels(model: nn.Module, plan: dict, example_input: torch.Tensor) -> nn.Module:
    """Remove the listed output channels of each module in ``plan`` and everything coupled to them.

    ``plan`` maps a Conv2d/Linear module of ``model`` to the output-channel indices to remove. A layer
    keeps at least one channel. In place; returns ``model``.
    """
    tp = _tp()
    was_training = model.training
    model.eval()
    tp_guard = _AllTrainable(model)
    dg = dependency_graph(model, example_input)
    for module, idxs in plan.items():
        idxs = sorted({int(i) for i in idxs})
        if not idxs:
            continue
        n_out = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        if any(i < 0 or i >= n_out for i in idxs):
            raise ConfigError(f"channel index out of range for a layer with {n_out} outputs")
        if len(idxs) >= n_out:
            raise ConfigError("cannot remove every channel of a layer")
        fn = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
        group = dg.get_pruning_group(module, fn, idxs=idxs)
        if dg.check_pruning_group(group):
            group.prune()
    tp_guard.__exit__()
    model.train(was_training)
    return model


def magnitude_prune(model: nn.Module, example_input: torch.Tensor, *, ratio: float | None = None,
                    target_macs: float | None = None, target_params: float | None = None,
                    importance: str = "l1", ignored_layers=None, loss_fn=None, steps: int = 40,
                    seed: int = 0, global_pruning: bool = False) -> nn.Module:
    """Torch-Pruning's channel pruning with an importance criterion (``l1``, ``taylor``, ``random``),
    in place: ``model`` itself is pruned and returned (pass a copy to keep the original).

    Either a uniform per-layer ``ratio``, or iterative steps until MACs/params reach the target.
    ``taylor`` needs ``loss_fn(model) -> loss`` evaluated on real data before each step.
    ``global_pruning``: Torch-Pruning ranks all layers' (normalised) importances together, so with a
    ``ratio`` that share of all prunable channels goes and the per-layer widths are its choice.
    """
    tp = _tp()
    torch.manual_seed(seed)
    imp = {"l1": lambda: tp.importance.MagnitudeImportance(p=1),
           "l2": lambda: tp.importance.MagnitudeImportance(p=2),
           "taylor": lambda: tp.importance.TaylorImportance(),
           "random": lambda: tp.importance.RandomImportance()}.get(importance)
    if imp is None:
        raise ConfigError(f"unknown importance {importance!r}: use l1, l2, taylor or random")
    if importance == "taylor" and loss_fn is None:
        raise ConfigError("taylor importance needs a loss function on real data")
    ignored = list(ignored_layers or []) + [output_layer(model)]
    was_training = model.training
    model.eval()
    frozen = _AllTrainable(model)
    frozen.__enter__()
    try:
        _magnitude_steps(tp, model, example_input, imp, ratio, target_macs, target_params, importance, ignored,
                         loss_fn, steps, global_pruning)
    finally:
        frozen.__exit__()
    model.train(was_training)
    return model


def _magnitude_steps(tp, model, example_input, imp, ratio, target_macs, target_params, importance, ignored,
                     loss_fn, steps, global_pruning=False):
    if ratio is not None:
        pruner = tp.pruner.MagnitudePruner(model, example_input, importance=imp(), pruning_ratio=ratio,
                                           ignored_layers=ignored, global_pruning=global_pruning)
        _step(pruner, model, loss_fn, importance)
    else:
        if target_macs is None and target_params is None:
            raise ConfigError("give ratio, target_macs or target_params")
        # global ranking may take one layer's channels long before the others': keep 5 % of every layer
        pruner = tp.pruner.MagnitudePruner(model, example_input, importance=imp(), pruning_ratio=0.99,
                                           iterative_steps=steps, ignored_layers=ignored,
                                           global_pruning=global_pruning,
                                           max_pruning_ratio=0.95 if global_pruning else 1.0)
        for _ in range(steps):
            macs, params = count_macs_for_input(model, example_input[:1]), count_params(model)
            if (target_macs is None or macs <= target_macs) and (target_params is None or params <= target_params):
                break
            _step(pruner, model, loss_fn, importance)


def _step(pruner, model, loss_fn, importance):
    if importance == "taylor":
        model.zero_grad()
        loss_fn(model).backward()
    pruner.step()
    if importance == "taylor":
        model.zero_grad()
