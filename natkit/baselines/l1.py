"""Torch-Pruning L1 magnitude pruning to a MAC target, matched within a relative tolerance.

Iterative pruning towards a target stops at the first step below it, which can land several percent
under (TASCNet's stored comparison: 3.6-6 % fewer MACs than the member it was compared with). Here one
uniform ratio is bisected until the pruned copy's MACs are within ``tolerance`` of the target.
"""

from __future__ import annotations

import copy

from natkit.errors import NatkitError
from natkit.measure.counts import count_macs
from natkit.prune.surgery import magnitude_prune


def l1_to_macs(model, example, target_macs: float, *, tolerance: float = 0.01, ignored_layers=None,
               max_iter: int = 30):
    """(pruned copy of ``model``, relative MAC gap ``macs / target - 1``). Raises NatkitError when no
    uniform ratio lands within ``tolerance`` (channel granularity too coarse for this target)."""
    res, ch = example.shape[-1], example.shape[1]
    full = count_macs(model, res, ch)
    if target_macs >= full:
        return copy.deepcopy(model), full / target_macs - 1
    lo, hi = 0.0, 0.99
    best = None
    for _ in range(max_iter):
        ratio = (lo + hi) / 2
        pruned = magnitude_prune(copy.deepcopy(model), example, ratio=ratio, importance="l1",
                                 ignored_layers=ignored_layers)
        gap = count_macs(pruned, res, ch) / target_macs - 1
        if best is None or abs(gap) < abs(best[1]):
            best = (pruned, gap)
        if abs(gap) <= tolerance:
            break
        if gap > 0:
            lo = ratio
        else:
            hi = ratio
    if abs(best[1]) > tolerance:
        raise NatkitError(f"L1 pruning cannot reach {target_macs:,.0f} MACs within {tolerance:.0%} "
                          f"(closest {best[1]:+.1%})")
    return best
