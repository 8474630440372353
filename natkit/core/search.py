"""Run any pymoo algorithm on an ArchiveProblem, logging hypervolume per generation."""

from __future__ import annotations

import numpy as np
from pymoo.core.callback import Callback
from pymoo.indicators.hv import HV
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize

from natkit.core.archive import nondominated


def nsga(n_obj: int, pop_size: int, sampling=None, seed: int = 0, repair=None):
    """NSGA-II for two objectives, NSGA-III (Das-Dennis directions) for three or more, integer operators;
    ``repair`` is an optional pymoo Repair applied to every offspring (e.g. NAT's genome repair)."""
    common = dict(pop_size=pop_size, sampling=sampling if sampling is not None else IntegerRandomSampling(),
                  crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                  mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    if repair is not None:
        common["repair"] = repair
    if n_obj <= 2:
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(**common)
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    n_part = 1
    from math import comb

    while comb(n_part + 1 + n_obj - 1, n_obj - 1) <= pop_size:
        n_part += 1
    ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=n_part)
    return NSGA3(ref_dirs=ref_dirs, **common)


def hypervolume(F: np.ndarray, bounds: list[tuple[float, float]]) -> float:
    """pymoo HV of objectives normalised to [0, 1] by fixed bounds, reference point 1.1 per axis."""
    if len(F) == 0:
        return 0.0
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    Z = (np.asarray(F, dtype=float) - lo) / np.maximum(hi - lo, 1e-12)
    Z = Z[np.all(Z <= 1.1, axis=1)]
    if len(Z) == 0:
        return 0.0
    return float(HV(ref_point=np.full(Z.shape[1], 1.1))(Z))


def history_front(history, objectives, budget=None) -> np.ndarray:
    F = np.array([[m[o] for o in objectives] for _, m, s in history if s == "ok"
                  and all(m.get(o) is not None for o in objectives)], dtype=float).reshape(-1, len(objectives))
    return F[nondominated(F)] if len(F) else F


class ArchiveCallback(Callback):
    """Per generation: hypervolume and size of the front of everything this run has evaluated."""

    def __init__(self, problem, bounds):
        super().__init__()
        self.problem, self.bounds = problem, bounds

    def notify(self, algorithm):
        log_generation(self.problem, self.bounds)


def log_generation(problem, bounds) -> float:
    front = history_front(problem.history, problem.objectives)
    hv = hypervolume(front, bounds)
    problem.archive.log_generation(problem.run_id, problem.generation - 1, len(problem.history), hv, len(front))
    return hv


def termination(generations: int, time_limit: float = 0.0):
    """pymoo's generation termination, or (``time_limit`` > 0 seconds) that or pymoo's time-based one,
    whichever comes first. pymoo checks between generations: a generation under way when the time runs
    out is finished and archived, so a run may overrun the limit by up to one generation."""
    from pymoo.core.termination import TerminateIfAny
    from pymoo.termination import get_termination

    by_generations = get_termination("n_gen", int(generations))
    if not time_limit:
        return by_generations
    return TerminateIfAny(by_generations, get_termination("time", float(time_limit)))


def run_pymoo(problem, algorithm, *, generations: int, seed: int, bounds, time_limit: float = 0.0):
    """``pymoo.minimize`` with a seed and a generation budget (and optionally a wall-time limit in seconds,
    see :func:`termination`); returns pymoo's result."""
    return minimize(problem, algorithm, termination(generations, time_limit), seed=int(seed),
                    callback=ArchiveCallback(problem, bounds), verbose=False, copy_algorithm=False)
