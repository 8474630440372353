"""Torch-Pruning baselines replayed on the LDA schedule (used by ``python -m benchmarks.lda.compression``).

Three ways to put a baseline at LDA's size, all starting from the *same* transferred network as LDA
and replaying LDA's fine-tuning calls of every round exactly (same epochs, same seeds, same
optimiser and learning-rate schedule, recovery epochs included):

* ``widths`` (exact): in every round the baseline's current network is cut to LDA's per-layer widths
  of that round. Which channels go is decided by Torch-Pruning's importance on each coupled group
  (``MagnitudeImportance(p=1)`` = L1, ``TaylorImportance``, ``RandomImportance``); removal is the
  core's Torch-Pruning surgery. Parameter and MAC counts are identical to LDA's, so the comparison
  isolates LDA's channel *choice*.
* ``uniform``: Torch-Pruning's ``MagnitudePruner`` with one pruning ratio for every layer (its usual
  use), the ratio bisected so the count lands as close as possible to LDA's. This also compares
  LDA's per-layer *allocation*; counts differ by a few parameters (reported).
* ``global``: Torch-Pruning's ``MagnitudePruner(global_pruning=True)``: the (per-group normalised)
  importances of all layers are ranked together, so the baseline chooses its own per-layer widths by
  its own criterion. It removes the least important 2 % of the remaining prunable channels per step
  until the count reaches LDA's (the nearer of the last two steps), and a layer at LDA's width floor
  (``min_width`` of its unpruned width, ``Pruner.floors``) is left out of the ranking, so both sides
  obey the same floor. One step can still cross it: Torch-Pruning removes every channel whose score
  ties the step's threshold (Taylor scores of dead channels are all 0). In the stored seeds the
  most a global baseline went below the all-floors network was 51 parameters (of 3,943).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError
from natkit.measure import count_params
from natkit.methods.lda import tracing as TR
from natkit.prune.surgery import dependency_graph, magnitude_prune, remove_channels

IMPORTANCES = ("l1", "taylor", "random")
MODES = ("widths", "uniform", "global")


def _importance(name):
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "random":
        return tp.importance.RandomImportance()
    raise ConfigError(f"unknown importance {name!r}")


def taylor_loss(task, pruner, seed):
    """Taylor importance needs gradients on real data: one shuffled train batch of 256."""
    xb, yb = next(iter(task.batches("train", 256, resolution=pruner.res, channels=pruner.ch, shuffle=True,
                                    seed=seed)))
    return lambda m: F.cross_entropy(m(xb), yb)


def widths(model: nn.Module) -> dict:
    """Output width of every conv / linear layer, by module name."""
    return {n: (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def prune_to_widths(model, target: dict, example, importance: str, *, loss_fn=None, seed=0):
    """A copy of ``model`` whose group roots have exactly the widths in ``target`` (by name),
    the channels chosen by the Torch-Pruning importance ``importance`` on each group."""
    model = copy.deepcopy(model).cpu().eval()
    named = dict(model.named_modules())
    groups = TR.channel_groups(model, example)
    torch.manual_seed(seed)
    imp = _importance(importance)
    if importance == "taylor":
        model.zero_grad()
        loss_fn(model).backward()
    dg = dependency_graph(model, example)
    import torch_pruning as tp

    plan = {}
    for g in groups:
        module = named[g.root]
        n_remove = g.size - int(target[g.root])
        if n_remove < 0:
            raise ConfigError(f"{g.root}: the baseline has {g.size} channels, fewer than the target {target[g.root]}")
        if n_remove == 0:
            continue
        fn = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
        group = dg.get_pruning_group(module, fn, idxs=list(range(g.size)))
        scores = imp(group)
        if scores is None:  # Torch-Pruning returns None for a group it cannot score
            raise ConfigError(f"{importance} importance gave no score for {g.root}")
        order = np.argsort(scores.detach().cpu().numpy(), kind="stable")
        plan[module] = sorted(order[:n_remove].tolist())
    model.zero_grad(set_to_none=True)
    if plan:
        remove_channels(model, plan, example)
    got = widths(model)
    bad = {k: (got[k], v) for k, v in target.items() if got.get(k) != v}
    if bad:
        raise ConfigError(f"widths after pruning differ from the target: {bad}")
    return model


def prune_uniform(model, target_params: int, example, importance: str, *, loss_fn=None, seed=0):
    """Torch-Pruning MagnitudePruner, one ratio for all layers, count nearest to ``target_params``."""
    def pruned(ratio):
        return magnitude_prune(copy.deepcopy(model).cpu().eval(), example, ratio=ratio, importance=importance,
                               loss_fn=loss_fn, seed=seed)

    if count_params(model) <= target_params:
        return copy.deepcopy(model)
    lo, hi = 0.0, 0.99
    lo_m, hi_m = copy.deepcopy(model), pruned(hi)
    for _ in range(12):
        mid = (lo + hi) / 2
        m = pruned(mid)
        if count_params(m) <= target_params:
            hi, hi_m = mid, m
        else:
            lo, lo_m = mid, m
    return min((lo_m, hi_m), key=lambda m: abs(count_params(m) - target_params))


def prune_global(model, target_params: int, example, importance: str, *, floors: dict, loss_fn=None, seed=0,
                 step: float = 0.02, max_steps: int = 400):
    """Torch-Pruning global pruning in small steps down to ``target_params`` (see the module doc)."""
    if not floors:
        raise ValueError("prune_global needs the width floors (Pruner.set_reference was not called)")
    missing = sorted(set(floors) - set(widths(model)))
    if missing:
        raise ValueError(f"prune_global: floor for {missing[0]!r}, which is not a prunable layer of the model")
    current = copy.deepcopy(model).cpu().eval()
    prev = current
    for k in range(max_steps):
        if count_params(current) <= target_params:
            break
        nxt = copy.deepcopy(current)
        named, w = dict(nxt.named_modules()), widths(nxt)
        ignored = [named[n] for n, f in floors.items() if w[n] <= f]
        nxt = magnitude_prune(nxt, example, ratio=step, importance=importance, loss_fn=loss_fn,
                              seed=seed + k, global_pruning=True, ignored_layers=ignored)
        if count_params(nxt) >= count_params(current):  # every layer at its floor: nothing left to remove
            break
        prev, current = current, nxt
    return min((prev, current), key=lambda m: abs(count_params(m) - target_params))


def trajectory(base, task, pruner, rounds, importance: str, mode: str, seed: int, log=print):
    """The baseline's network after each LDA round: cut to LDA's size of that round, then the same
    fine-tuning calls as LDA's round (``Round.chunks``)."""
    if mode not in MODES:
        raise ConfigError(f"unknown baseline mode {mode!r}")
    current, out = base, []
    for k, r in enumerate(rounds):
        loss_fn = taylor_loss(task, pruner, seed + k) if importance == "taylor" else None
        if mode == "widths":
            current = prune_to_widths(current, widths(r.model), pruner.example, importance, loss_fn=loss_fn,
                                      seed=seed + k)
        elif mode == "uniform":
            current = prune_uniform(current, r.metrics["params"], pruner.example, importance, loss_fn=loss_fn,
                                    seed=seed + k)
        else:
            current = prune_global(current, r.metrics["params"], pruner.example, importance,
                                   floors=pruner.floors, loss_fn=loss_fn, seed=seed + k)
        for epochs, ft_seed in r.chunks:
            pruner.finetune(current, epochs, seed=ft_seed)
        out.append(current)
    log(f"{importance}/{mode}: {len(out)} rounds, final params {count_params(current)}")
    return out
