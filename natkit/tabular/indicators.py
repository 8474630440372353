"""Exact Pareto fronts of a table and the scores of a search against them (pymoo's HV and IGD).

The exact front is every architecture that no other one dominates on the run-mean objectives; ties
(architectures with identical objective values) are all kept, which is the definition that gives
NAS-Bench-Macro's published sizes (error-params 50, error-flops 66, error-params-flops 177).

Scores use fixed normalisation: each objective is mapped to [0, 1] by the table's own minimum and
maximum, so every run of every engine is measured on the same axes; the hypervolume reference point
is 1.1 per axis (``natkit.core.search.hypervolume``).
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.igd import IGD
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from natkit.core.archive import nondominated
from natkit.core.search import hypervolume


def exact_front(table, objectives) -> np.ndarray:
    """Row indices of every non-dominated architecture of ``table`` on ``objectives`` (ties kept)."""
    F = table.mean(objectives)
    return np.sort(NonDominatedSorting().do(F, only_non_dominated_front=True))


class TableScorer:
    """HV ratio and IGD of a set of table rows against the table's exact front."""

    def __init__(self, table, objectives):
        self.table, self.objectives = table, list(objectives)
        F = table.mean(self.objectives)
        self.bounds = [(float(lo), float(hi)) for lo, hi in zip(F.min(0), F.max(0))]
        self.front_rows = exact_front(table, self.objectives)
        self.front = F[self.front_rows]
        self.hv_exact = hypervolume(self.front, self.bounds)
        self._igd = IGD(self._normalise(np.unique(self.front, axis=0)))

    def _normalise(self, F) -> np.ndarray:
        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        return (np.asarray(F, float) - lo) / np.maximum(hi - lo, 1e-12)

    def score(self, rows) -> dict:
        """Scores of the non-dominated subset of ``rows`` (run-mean objectives)."""
        rows = np.unique(np.asarray(list(rows), dtype=int))
        if not len(rows):
            return {"hv": 0.0, "hv_ratio": 0.0, "igd": float("nan"), "front_size": 0, "exact_found": 0}
        F = self.table.mean(self.objectives, rows)
        nd = nondominated(F)
        hv = hypervolume(F[nd], self.bounds)
        return {"hv": hv, "hv_ratio": hv / self.hv_exact, "igd": float(self._igd(self._normalise(F[nd]))),
                "front_size": len(nd), "exact_found": int(np.isin(rows, self.front_rows).sum())}
