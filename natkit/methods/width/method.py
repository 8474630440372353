"""Reference search `width`: NSGA-II (pymoo) over a VGG's per-layer widths, each candidate trained
briefly from scratch on the target. Every method is compared against it."""

from __future__ import annotations

from natkit.methods.common import finalize
from natkit.methods.width.space import WidthOptions as Options, build_reference

__all__ = ["Options", "run"]


def run(ctx) -> None:
    space, evaluator, bounds = build_reference(ctx)
    problem = ctx.problem(space, evaluator)
    ctx.minimize(problem, bounds)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    finalize(ctx)
