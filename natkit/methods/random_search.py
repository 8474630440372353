"""Reference search `random`: the width space sampled uniformly (pymoo's integer random sampling),
with the same number of evaluations as `width` (pop_size x generations), in generation-sized batches."""

from __future__ import annotations

from pymoo.operators.sampling.rnd import IntegerRandomSampling

from natkit.methods.width_space import build_reference


def run(ctx) -> None:
    if ctx.quick:
        ctx.generations, ctx.pop_size = min(ctx.generations, 3), min(ctx.pop_size, 6)
    space, evaluator, bounds = build_reference(ctx)
    problem = ctx.problem(space, evaluator)
    sample_random(ctx, problem, bounds, ctx.pop_size * ctx.generations)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    ctx.finalize()


def sample_random(ctx, problem, bounds, n_total: int) -> None:
    import numpy as np

    rng = np.random.default_rng(ctx.seed)
    X = IntegerRandomSampling().do(problem, n_total, random_state=rng).get("X")
    ctx.progress.expect(n_total)
    for start in range(0, n_total, ctx.pop_size):
        problem.evaluate(X[start:start + ctx.pop_size], return_as_dictionary=True)
        ctx.log_generation(problem, bounds)
