"""The thin pymoo adapter: decision vectors -> archived evaluations -> F and G."""

from __future__ import annotations

import hashlib
import json
import time
import re

import numpy as np
from pymoo.core.problem import Problem

from natkit.core.archive import OBJECTIVES, Archive, encode_key
from natkit.core.budget import Budget
from natkit.core.evaluator import EvalResult, Evaluator
from natkit.core.writer import ArchiveWriter, metrics_of
from natkit.errors import ConfigError


def make_eval_key(task_spec: str, method: str, settings: dict, device: str | None = None) -> str:
    """The evaluator's settings plus what changes its results: the numerics (threads, device, determinism)
    and, when it is not the default, how latency is measured or predicted."""
    from natkit.core.numerics import numerics
    from natkit.measure.latency import current_setting

    key = {"task": task_spec, "method": method, "settings": settings, "numerics": numerics(device)}
    hardware = current_setting()
    if not hardware.is_default():  # latencies measured another way are not comparable
        key["hardware"] = hardware.to_dict()
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


TABLE_COSTS = re.compile(r"^(flops|latency_[a-z0-9_]+)$")  # cost columns a table task may name (natkit/data/table.py)


def check_objectives(objectives, table_costs: bool = False) -> list[str]:
    """Known objective names; ``table_costs`` also admits a table task's cost columns (flops, latency_<device>)."""
    objectives = [o.strip() for o in objectives if o.strip()]
    bad = [o for o in objectives if o not in OBJECTIVES + ("robust_error",)
           and not (table_costs and TABLE_COSTS.match(o))]
    if bad:
        raise ConfigError(f"unknown objective {bad[0]!r}; choose from {', '.join(OBJECTIVES)}")
    if len(objectives) < 2 or len(set(objectives)) != len(objectives):
        raise ConfigError(f"need at least two distinct objectives, got {','.join(objectives)!r}")
    return objectives


class SerialRunner:
    """Evaluate one candidate after another in this process; yields results as they finish."""

    def map(self, evaluator: Evaluator, encodings):
        for i, enc in enumerate(encodings):
            yield i, evaluator.evaluate(enc)


class ArchiveProblem(Problem):
    """Integer pymoo problem whose every real evaluation is archived before the next begins.

    Each call of ``_evaluate`` is one generation. Candidates already archived with the same
    ``eval_key`` are read back, not evaluated, which is what makes ``--resume`` replay cheap.
    Failed candidates get the worst objective values and a violated constraint.
    """

    def __init__(self, space, evaluator: Evaluator, objectives, budget: Budget, archive: Archive, run_id: int,
                 method: str, eval_key: str, worst: dict | None = None, runner=None, model_dir=None,
                 chance=None, log=None):
        self.space, self.evaluator, self.archive = space, evaluator, archive
        self.objectives = check_objectives(objectives, table_costs=True)  # the CLI checked them per task
        self.budget, self.run_id, self.method, self.eval_key = budget, run_id, method, eval_key
        self.worst = {"error": 1.0, "params": 1e12, "macs": 1e15, "latency_ms": 1e6, "robust_error": 1.0,
                      **(worst or {})}
        self.runner = runner or SerialRunner()
        self.model_dir = model_dir
        self.writer = ArchiveWriter(archive, run_id, method, budget, model_dir, chance=chance, log=log)
        self.generation = 0
        self.n_real = 0  # real evaluations done by this process
        self.n_read_back = 0  # results another process evaluated while this one waited
        self.history: list[tuple[list[int], dict, str]] = []  # (encoding, metrics, status) in order
        if evaluator is not None:
            from natkit.core.numerics import eval_threads

            evaluator.eval_threads = eval_threads()  # travels with the evaluator to Dask workers
        super().__init__(n_var=space.n_var, n_obj=len(self.objectives), n_ieq_constr=max(budget.n_constr, 0),
                         xl=space.xl, xu=space.xu, vtype=int,
                         exclude_from_serialization=["evaluator", "archive", "runner", "space", "log"])

    def metrics_for(self, encodings) -> list[tuple[dict, str]]:
        """Archive lookups first, then real evaluations of the rest (possibly in parallel).

        Each candidate is claimed in the archive just before it is evaluated, so processes sharing the
        archive split a population between them: one already claimed by a live process is waited for
        and read back (or taken over when its owner died), never evaluated twice.
        """
        out: list = [None] * len(encodings)
        todo = []
        for i, enc in enumerate(encodings):
            hit = self.archive.lookup(self.eval_key, enc)  # read only: found rows are not evaluated again
            if hit is not None:
                out[i] = (metrics_of(hit), hit.status)
            else:
                todo.append(i)
        # identical encodings inside one population are evaluated once
        first: dict = {}
        pending = []
        for i in todo:
            key = encode_key(encodings[i])
            if key not in first:
                first[key] = i
                pending.append(i)
        try:
            while pending:
                waiting: list = []
                order: list = []

                def claimed():
                    for i in pending:
                        state, val = self.archive.claim(self.eval_key, encodings[i])
                        if state == "done":  # finished by another process a moment ago
                            out[i] = (metrics_of(val), val.status)
                            self.n_read_back += 1
                        elif state == "mine":
                            order.append(i)
                            yield encodings[i]
                        else:
                            waiting.append(i)

                for j, res in self.runner.map(self.evaluator, claimed()):
                    i = order[j]
                    out[i] = self._archive_result(encodings[i], res)
                pending = self._await_others(waiting, encodings, out)
        except BaseException:
            self.archive.release_claims()  # evaluations this process will not finish
            raise
        for i in todo:
            if out[i] is None:
                out[i] = out[first[encode_key(encodings[i])]]
        return out

    def _await_others(self, waiting, encodings, out, poll: float = 0.2) -> list:
        """Wait for candidates other processes are evaluating; return those to take over (owner gone)."""
        since = time.time() - 1.0
        takeover: list = []
        while waiting:
            still = []
            for i in waiting:
                state, val = self.archive.poll_claim(self.eval_key, encodings[i], since)
                if state == "done":
                    out[i] = (metrics_of(val), val.status)
                    self.n_read_back += 1
                elif state == "failed":  # the other process's evaluation failed: so would ours
                    out[i] = ({}, "failed")
                elif state == "mine":
                    takeover.append(i)
                else:
                    still.append(i)
            waiting = still
            if waiting and not takeover:
                time.sleep(poll)
            elif takeover:
                break
        return takeover + waiting

    def _archive_result(self, encoding, res: EvalResult):
        row = self.writer.write(encoding, res, eval_key=self.eval_key, generation=self.generation)
        if not row.reused:
            self.n_real += 1
        return row.metrics, row.status

    def _evaluate(self, X, out, *args, **kwargs):
        encodings = [self.space.repair(x) for x in np.atleast_2d(X)]
        results = self.metrics_for(encodings)
        F, G = [], []
        for enc, (m, status) in zip(encodings, results):
            self.history.append((enc, m, status))
            if status == "failed":
                F.append([self.worst[o] for o in self.objectives])
                G.append([1.0] * self.budget.n_constr)
            else:
                F.append([float(m[o]) if m.get(o) is not None else self.worst[o] for o in self.objectives])
                G.append(self.budget.g(m))
        out["F"] = np.array(F, dtype=float)
        if self.budget.n_constr:
            out["G"] = np.array(G, dtype=float)
        self.generation += 1
