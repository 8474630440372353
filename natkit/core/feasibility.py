"""Budgets no candidate can meet, found before any training.

Where a method knows the smallest parameter and MAC counts of its space in closed form (NAT's
supernet space, the width space of `width`/`random`, KE's slim network) or can build its smallest
network untrained and count it (the pruning methods ``lda``, ``progressive`` and ``tascnet``, each in its
``smallest.py``, which says why its network is a lower bound), it calls ``require_reachable`` before it
pretrains or trains anything: a ``params`` or ``macs`` limit below the smallest achievable value is a
``ConfigError`` (exit 2) naming both numbers, instead of a search that ends with nothing feasible.
"""

from __future__ import annotations

import contextlib

from natkit.errors import ConfigError

CLOSED_FORM = ("params", "macs")


class InfeasibleBudgetError(ConfigError):
    pass


@contextlib.contextmanager
def one_thread():
    """Count on one torch thread. The counts run a few forward passes of tiny untrained networks at batch
    1-2, where more threads gain nothing; on a busy 2-core machine their spin-waiting made TASCNet's
    count 12.3 s instead of 0.3 s."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def unreachable(budget, minima: dict) -> dict:
    """``{metric: (limit, smallest)}`` for every closed-form limit below the smallest achievable value."""
    return {k: (budget.limits[k], float(minima[k])) for k in CLOSED_FORM
            if k in budget.limits and minima.get(k) is not None and float(minima[k]) > budget.limits[k]}


def require_reachable(budget, minima: dict, what: str, how: str = "closed-form count") -> None:
    """Raise ``InfeasibleBudgetError`` when a params/MACs limit is below ``minima``; ``how`` says how the
    minima were counted."""
    bad = unreachable(budget, minima)
    if bad:
        smallest = ", ".join(f"{k} {int(minima[k]):,}" for k in CLOSED_FORM if minima.get(k) is not None)
        limits = ", ".join(f"{k} <= {lim:g}" for k, (lim, _) in bad.items())
        raise InfeasibleBudgetError(f"budget {limits} cannot be met: the smallest candidate of {what} has "
                                    f"{smallest} ({how}, checked before any training)")
