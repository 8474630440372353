"""Reference search `random`: the width space sampled uniformly (pymoo's integer random sampling),
with the same number of evaluations as `width` (pop_size x generations), in generation-sized batches."""

from __future__ import annotations

from pymoo.operators.sampling.rnd import IntegerRandomSampling

from natkit.methods.common import finalize
from natkit.methods.width.space import WidthOptions as Options, build_reference

__all__ = ["Options", "run"]


def run(ctx) -> None:
    space, evaluator, bounds = build_reference(ctx)
    problem = ctx.problem(space, evaluator)
    sample_random(ctx, problem, bounds, ctx.options.pop_size * ctx.options.generations)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    finalize(ctx)


def sample_random(ctx, problem, bounds, n_total: int) -> None:
    import numpy as np

    rng = np.random.default_rng(ctx.seed)
    X = IntegerRandomSampling().do(problem, n_total, random_state=rng).get("X")
    ctx.progress.expect(n_total)
    step = ctx.options.pop_size
    for start in range(0, n_total, step):
        problem.evaluate(X[start:start + step], return_as_dictionary=True)
        ctx.log_generation(problem, bounds)
