"""Reference search `width`: NSGA-II (pymoo) over a VGG's per-layer widths, each candidate trained
briefly from scratch on the target. Every method is compared against it.

``time_limit`` (seconds, 0 = none) gives the search a wall-time budget: pymoo's time-based termination,
combined with the generation termination so whichever comes first stops the search (pymoo checks between
generations, so the generation under way is finished and archived; the overrun is at most one generation).
A resumed run counts the evaluation seconds its earlier attempts archived against the limit; a run that
had finished, or whose earlier attempts used the whole limit, replays the generations it logged and
evaluates nothing new.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from natkit.core.options import option
from natkit.errors import ConfigError
from natkit.methods.common import finalize
from natkit.methods.width.space import WidthOptions, build_reference

__all__ = ["Options", "run"]


@dataclass
class Options(WidthOptions):
    """The reference search's options plus its wall-time limit (``random`` shares the rest)."""

    time_limit: float = option(0.0, doc="wall-time limit of the search in seconds (0: none); the search stops at "
                                        "the first generation boundary after it, or after `generations`, "
                                        "whichever comes first")

    def check(self) -> None:
        super().check()
        if not math.isfinite(self.time_limit) or self.time_limit < 0:
            raise ConfigError(f"width option time_limit must be a number of seconds >= 0 (0: no limit), "
                              f"got {self.time_limit!r}")


def _resumed(ctx, generations: int, limit: float) -> tuple[int, float, float]:
    """(generation cap, seconds left, seconds spent earlier) for a resumed run with a time limit."""
    earlier = ctx.archive.candidates(run_id=ctx.run_id)
    spent = float(sum(c.seconds or 0.0 for c in earlier))
    logged = len(ctx.archive.generations(ctx.run_id))
    if ctx.archive.run(ctx.run_id).status == "done" or spent >= limit:
        # the search already ended: replay what it logged (archive look-ups only), evaluate nothing new
        return max(1, min(generations, logged)), 0.0, spent
    return generations, limit - spent, spent


def run(ctx) -> None:
    space, evaluator, bounds = build_reference(ctx)
    problem = ctx.problem(space, evaluator)
    o = ctx.options
    generations, limit, spent = o.generations, float(o.time_limit), 0.0
    if limit and ctx.resume:
        generations, limit, spent = _resumed(ctx, generations, limit)
    t0 = time.time()
    ctx.minimize(problem, bounds, generations=generations, time_limit=limit)
    seconds = time.time() - t0
    done = len(ctx.archive.generations(ctx.run_id))
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    if o.time_limit:
        stopped = "generations" if done >= o.generations else "time_limit"
        ctx.stats.update(time_limit=o.time_limit, search_seconds=round(seconds + spent, 2),
                         generations_done=done, stopped_by=stopped)
        ctx.log(f"time limit {o.time_limit:g} s: {done} of {o.generations} generations in "
                f"{seconds + spent:.1f} s; stopped by {stopped.replace('_', ' ')}")
    finalize(ctx)
