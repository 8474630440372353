"""Chance level of a task's validation split, and the flag for candidates that did not beat it.

A network that learned nothing still scores: predicting the most frequent validation class gets
accuracy ``p_max`` (the largest class prior of the val split), and a network that guesses at random
gets less. So chance error is ``1 - p_max``.

Noise margin (one-sided exact binomial bound): on ``n`` validation images a predictor that is right
with probability ``p_max`` gets ``K ~ Binomial(n, p_max)`` right. A candidate is *at chance* when its
number of correct images ``k`` is at most the ``1 - ALPHA`` quantile of that distribution, i.e. when
its accuracy does not beat chance at significance ``ALPHA`` (1%). On 32 validation images of two
balanced classes that flags errors of 28.1% and above; on 2,000 images of ten classes, 88.4% and above.

The level is that of the images a candidate's error is measured on: a method that measures on the first
``val_limit`` validation images (``nat``, ``ke``) says so through ``Options.val_images()``, and the run's
context (``RunContext.chance``) builds the level from those images only. A margin taken from the full
split would be too narrow for the fewer images: on 50 balanced two-class images an error of 40% is
within noise of chance (it needs 34% or less), while on 2,000 it is not (47.4% or more is).

Flagged rows keep their status; their archive ``extra`` gets ``chance: true``. Fronts, plots and
summaries leave them out, the run's log names them, and a run whose every candidate is at chance
exits with code 3 (``EXIT_ALL_CHANCE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.01
EXIT_ALL_CHANCE = 3
FLAG = "chance"


@dataclass(frozen=True)
class ChanceLevel:
    n: int  # validation images
    chance_error: float  # 1 - largest class prior of the val split
    threshold_error: float  # errors at or above this are within noise of chance
    alpha: float = ALPHA

    @classmethod
    def from_labels(cls, y, num_classes: int | None = None, alpha: float = ALPHA) -> "ChanceLevel":
        from scipy.stats import binom

        y = np.asarray(y, dtype=int).ravel()
        n = len(y)
        if n == 0:
            return cls(0, 1.0, 1.0, alpha)
        counts = np.bincount(y, minlength=num_classes or 0)
        p_max = counts.max() / n
        # largest correct-count a chance predictor reaches with probability >= alpha
        k_noise = int(binom.ppf(1.0 - alpha, n, p_max))
        return cls(n, float(1.0 - p_max), float(1.0 - k_noise / n), alpha)

    def at_chance(self, error) -> bool:
        if error is None or not np.isfinite(error) or self.n == 0:
            return False
        # a hair of tolerance: error is computed as 1 - correct / n in floating point
        return float(error) >= self.threshold_error - 0.5 / self.n

    def describe(self) -> str:
        return (f"chance error {100 * self.chance_error:.1f}% (largest class prior of {self.n} val images); "
                f"errors >= {100 * self.threshold_error:.1f}% are within noise of it (binomial, alpha {self.alpha})")

    def to_dict(self) -> dict:
        return {"n_val": self.n, "chance_error": self.chance_error, "threshold_error": self.threshold_error,
                "alpha": self.alpha}


_LEVELS: dict = {}


def chance_level(task, limit: int | None = None) -> ChanceLevel:
    """The chance level of ``task``'s val split, or of its first ``limit`` images: the ones a method that
    caps validation images measures (``Task.batches`` reads them in order). Its margin is for that many
    images and its chance error for their class priors. Cached per task object and limit."""
    n = len(task.val.y)
    limit = None if limit is None or int(limit) <= 0 or int(limit) >= n else int(limit)
    key = (id(task), limit)
    hit = _LEVELS.get(key)
    if hit is None or hit[0] is not task:
        hit = (task, ChanceLevel.from_labels(task.val.y[:limit].numpy(), task.num_classes))
        _LEVELS[key] = hit
    return hit[1]


def flag_extra(level: ChanceLevel | None, metrics: dict, status: str, extra: dict) -> dict:
    """``extra`` with ``chance: true`` added when a measured candidate's val error is at chance."""
    extra = dict(extra or {})
    if level is not None and status in ("ok", "infeasible") and level.at_chance((metrics or {}).get("error")):
        extra[FLAG] = True
    return extra


def is_chance(cand) -> bool:
    return bool(cand.extra.get(FLAG))


def warn(log, cand_id: int, error: float, level: ChanceLevel) -> None:
    if log is not None:
        log(f"warning: candidate {cand_id} is at chance: val error {100 * error:.1f}% >= "
            f"{100 * level.threshold_error:.1f}% (chance {100 * level.chance_error:.1f}% plus binomial noise on "
            f"{level.n} val images); kept off the front")


def add_checked(archive, level: ChanceLevel | None, log=None, **row) -> int:
    """``archive.add(**row)`` with the chance flag set and a warning line for a flagged row.

    Every archive write of a measured candidate goes through here (the one writer, once it exists,
    calls this), so no method can store a chance-level row silently."""
    row["extra"] = flag_extra(level, row.get("metrics") or {}, row.get("status", "ok"), row.get("extra"))
    run_id, method = row.pop("run_id"), row.pop("method")
    cid = archive.add(run_id, method, **row)
    if row["extra"].get(FLAG):
        warn(log, cid, float(row["metrics"]["error"]), level)
    return cid


def sweep(archive, run_id: int, level: ChanceLevel, log=None) -> list[int]:
    """Flag every measured row of ``run_id`` that is at chance but not yet flagged (rows written by a
    path that bypassed ``add_checked``); returns the ids of all flagged rows of the run."""
    flagged = []
    for c in archive.candidates(run_id=run_id, status=("ok", "infeasible", "stale")):
        if is_chance(c):
            flagged.append(c.id)
        elif c.status != "stale" and level.at_chance(c.error):
            archive.set_extra(c.id, {**c.extra, FLAG: True})
            warn(log, c.id, c.error, level)
            flagged.append(c.id)
    return flagged


def all_at_chance(archive, run_id: int) -> bool:
    """True when the run measured candidates and every current (ok / infeasible) one is at chance, and so
    is every row of the same evaluations that other runs or processes on the archive measured (a process
    sharing an archive evaluates only its part of the search; the part another one evaluated counts too)."""
    live = archive.candidates(run_id=run_id, status=("ok", "infeasible"))
    if not live or not all(is_chance(c) for c in live):
        return False
    keys = {c.eval_key for c in live if c.eval_key}
    shared = [c for c in archive.candidates(status=("ok", "infeasible")) if c.eval_key in keys]
    return all(is_chance(c) for c in shared)


def chance_summary(archive, run_id: int, level: ChanceLevel, log=None) -> dict:
    """After a run: flag what slipped through, log one summary line, return what run.json records."""
    flagged = sweep(archive, run_id, level, log)
    live = archive.candidates(run_id=run_id, status=("ok", "infeasible"))
    n_live_flagged = sum(is_chance(c) for c in live)
    if n_live_flagged and log is not None:
        ids = ", ".join(str(c.id) for c in live if is_chance(c))
        log(f"warning: {n_live_flagged} of {len(live)} candidates at chance (ids {ids}); kept off the front")
    return {**level.to_dict(), "flagged": flagged, "measured": len(live), "at_chance": n_live_flagged}
