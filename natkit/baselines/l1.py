"""Torch-Pruning L1 magnitude pruning to a MAC target, matched within a relative tolerance.

Iterative pruning towards a target that stops at the first step below it lands up to several percent
under (TASCNet's stored comparison: 0.5-16 % fewer MACs than the member it was compared with). Here the
channels of lowest (group-normalised) L1 magnitude are removed a few at a time, ranked globally by
Torch-Pruning (``global_pruning``, at most 95 % of any layer), and the step nearest to the target is kept:
the granularity is then about one channel, so the MACs match within ``tolerance`` (default 1 %).
"""

from __future__ import annotations

import copy

from natkit.errors import NatkitError
from natkit.measure.counts import count_macs
from natkit.prune.surgery import output_layer


def l1_to_macs(model, example, target_macs: float, *, tolerance: float = 0.01, steps: int = 1000):
    """(pruned copy of ``model``, relative MAC gap ``macs / target - 1``); ``model`` is left as it is.
    Raises NatkitError when no step lands within ``tolerance`` of the target."""
    import torch_pruning as tp

    res, ch = example.shape[-1], example.shape[1]
    work = copy.deepcopy(model).eval()
    gap = count_macs(work, res, ch) / target_macs - 1
    if gap <= tolerance:
        if abs(gap) > tolerance:
            raise NatkitError(f"the network already has {gap:+.1%} MACs against the target {target_macs:,.0f}")
        return work, gap
    pruner = tp.pruner.MagnitudePruner(work, example, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.99, iterative_steps=steps, global_pruning=True,
                                       max_pruning_ratio=0.95, ignored_layers=[output_layer(work)])
    prev, prev_gap = copy.deepcopy(work), gap
    for _ in range(steps):
        pruner.step()
        gap = count_macs(work, res, ch) / target_macs - 1
        if gap <= 0:
            best = (work, gap) if abs(gap) <= abs(prev_gap) else (prev, prev_gap)
            break
        if gap < prev_gap:
            prev, prev_gap = copy.deepcopy(work), gap
    else:
        best = (prev, prev_gap)
    if abs(best[1]) > tolerance:
        raise NatkitError(f"L1 pruning cannot reach {target_macs:,.0f} MACs within {tolerance:.0%} "
                          f"(closest {best[1]:+.1%})")
    return best
