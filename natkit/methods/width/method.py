"""Reference search `width`: NSGA-II (pymoo) over a VGG's per-layer widths, each candidate trained
briefly from scratch on the target. Every method is compared against it."""

from __future__ import annotations

from natkit.methods.width.space import build_reference


def run(ctx) -> None:
    if ctx.quick:
        ctx.generations, ctx.pop_size = min(ctx.generations, 3), min(ctx.pop_size, 6)
    space, evaluator, bounds = build_reference(ctx)
    problem = ctx.problem(space, evaluator)
    ctx.minimize(problem, bounds)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    ctx.finalize()
