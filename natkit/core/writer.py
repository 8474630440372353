"""The one archive writer: every row of every method enters the archive through ``write_row``.

``write_row`` does, in this order:
1. look-up: an ``ok``/``infeasible`` row with the same ``eval_key`` and encoding is returned as it is
   (not evaluated again, not added again), so a resumed or repeated run adds no rows;
2. evaluation, if ``result`` is a callable (it is called only when the look-up found nothing), under a
   claim (``natkit.core.claiming``): while another live process on the archive holds the candidate's
   claim this one waits and returns that process's row (or takes the claim over when its owner died,
   stopped its heartbeat, or released it without a result), so processes sharing an archive evaluate each
   candidate once; the claim is dropped when the row is stored, and also if the evaluation raises;
3. the budget: an ``ok`` result over the run's budget is stored as ``infeasible`` (pymoo's G > 0);
   a measured result whose validation error is within noise of chance is flagged (``extra.chance``,
   ``natkit.core.chance``) with a warning line naming its id;
4. the row itself (``Archive.insert``) and, unless the evaluation failed, the trained model under
   ``model_dir/<id>`` for ``natkit export`` and the final test-split report. The insert is idempotent: if a
   finished row for the same ``eval_key`` and encoding appeared meanwhile (a result computed before the
   look-up, by another process), that row is returned as reused and nothing is added or saved.

Methods hold an ``ArchiveWriter`` (the run's archive, run id, method, budget and model folder) and call
``writer.write(...)`` for side rows too (an unpruned base, a head-only transfer, intermediate states).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from natkit.core.archive import OBJECTIVES, Archive, Candidate, Status
from natkit.core.budget import Budget
from natkit.core.evaluator import EvalResult


@dataclass(frozen=True)
class Row:
    """What ``write_row`` returns: the row's id, its metrics (extra values included), its status, and
    whether it was already in the archive (``reused``: nothing was evaluated or added)."""

    id: int
    metrics: dict
    status: str
    reused: bool

    def measured(self) -> dict:
        """The measured values only (the objectives present and ``robust_error``), without the row's
        bookkeeping extras: what a method measured itself, whichever process stored the row."""
        return {k: v for k, v in self.metrics.items() if v is not None and (k in OBJECTIVES or k == "robust_error")}


def metrics_of(cand: Candidate) -> dict:
    m = {k: cand.metric(k) for k in OBJECTIVES}
    m.update(cand.extra)
    return m


def _reused(cand: Candidate) -> Row:
    return Row(cand.id, metrics_of(cand), cand.status, True)


def write_row(archive: Archive, *, run_id: int, method: str, eval_key: str, encoding,
              result: EvalResult | Callable[[], EvalResult], budget: Budget | None = None, generation: int = 0,
              model_dir: Path | None = None, extra: dict | None = None, chance=None, log=None) -> Row:
    """Look up, else claim and evaluate (if ``result`` is callable), check the budget and chance, archive
    and save the model. ``chance``: the val split's ``ChanceLevel`` (None: no check); ``log``: where
    warnings go."""
    hit = archive.lookup(eval_key, encoding)
    if hit is not None:
        return _reused(hit)
    if not callable(result):
        return _store(archive, run_id, method, eval_key, encoding, result, budget, generation, model_dir, extra,
                      chance, log)
    if eval_key:
        state, cand = archive.acquire(eval_key, encoding)
        if state in ("done", "failed"):  # another process's result: "failed" would fail here too
            return _reused(cand)
    try:
        return _store(archive, run_id, method, eval_key, encoding, result(), budget, generation, model_dir,
                      extra, chance, log)  # storing the row drops the claim in the same transaction
    except BaseException:
        if eval_key:
            archive.release(eval_key, encoding)  # an evaluation this process will not finish
        raise


def _store(archive: Archive, run_id, method, eval_key, encoding, result: EvalResult, budget, generation,
           model_dir, extra, chance, log) -> Row:
    from natkit.core.chance import FLAG, flag_extra, warn

    status = Status(result.status)
    if status is Status.OK and budget is not None and budget.n_constr and not budget.feasible(result.metrics):
        status = Status.INFEASIBLE
    row_extra = flag_extra(chance, result.metrics or {}, status.value, {**result.extra, **(extra or {})})
    cid, new = archive.insert(run_id, method, generation=generation, encoding=encoding, arch=result.arch,
                              metrics=result.metrics, status=status.value, message=result.message,
                              eval_key=eval_key, extra=row_extra, seconds=result.seconds)
    if not new:  # finished meanwhile (another process, or a by-product of a longer evaluation)
        first = archive.lookup(eval_key, encoding)
        if first is not None:
            return _reused(first)
    if row_extra.get(FLAG):
        warn(log, cid, float(result.metrics["error"]), chance)
    if result.model is not None and model_dir is not None and status is not Status.FAILED:
        from natkit.nets.io import save_model

        save_model(result.model, Path(model_dir) / str(cid))
    return Row(cid, {**result.metrics, **row_extra}, status.value, False)


@dataclass
class ArchiveWriter:
    """``write_row`` bound to one run: its archive, run id, method name, budget and model folder
    (``None``: keep no models)."""

    archive: Archive
    run_id: int
    method: str
    budget: Budget = field(default_factory=Budget)
    model_dir: Path | None = None
    chance: object = None  # the val split's ChanceLevel: at-chance rows are flagged
    log: object = None

    def write(self, encoding, result, *, eval_key: str, generation: int = 0, extra: dict | None = None,
              method: str | None = None) -> Row:
        return write_row(self.archive, run_id=self.run_id, method=method or self.method, eval_key=eval_key,
                         encoding=encoding, result=result, budget=self.budget, generation=generation,
                         model_dir=self.model_dir, extra=extra, chance=self.chance, log=self.log)

    def side_row(self, encoding, *, eval_key: str, metrics: dict | Callable[[], dict], model=None,
                 extra: dict | None = None, generation: int = 0) -> Row:
        """A row no pymoo problem evaluated (a base network, an intermediate state): the method measures
        it itself; it still goes through the look-up, the budget and model saving. ``metrics`` may be a
        callable doing the measuring: it is then called only under this process's claim, when the row is
        not in the archive yet (``write_row``)."""
        arch = getattr(model, "natkit_arch", None) if model is not None else None
        if not callable(metrics):
            return self.write(encoding, EvalResult(dict(metrics), arch, Status.OK.value, "", dict(extra or {}), None,
                                                   model), eval_key=eval_key, generation=generation)

        def measured() -> EvalResult:
            t0 = time.perf_counter()
            m = dict(metrics())
            return EvalResult(m, arch, Status.OK.value, "", dict(extra or {}), time.perf_counter() - t0, model)

        return self.write(encoding, measured, eval_key=eval_key, generation=generation)

    def save_model(self, cand_id: int, model) -> None:
        """Keep a model for a row archived earlier (NAT keeps only front members' weights)."""
        if self.model_dir is not None:
            from natkit.nets.io import save_model

            save_model(model, Path(self.model_dir) / str(cand_id))
