"""The thin pymoo adapter: decision vectors -> archived evaluations -> F and G."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
from pymoo.core.problem import Problem

from natkit.core.archive import OBJECTIVES, Archive, encode_key
from natkit.core.budget import Budget
from natkit.core.evaluator import EvalResult, Evaluator
from natkit.errors import ConfigError


def make_eval_key(task_spec: str, method: str, settings: dict) -> str:
    blob = json.dumps({"task": task_spec, "method": method, "settings": settings}, sort_keys=True, default=str)
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
                 method: str, eval_key: str, worst: dict | None = None, runner=None, model_dir=None):
        self.space, self.evaluator, self.archive = space, evaluator, archive
        self.objectives = check_objectives(objectives, table_costs=True)  # the CLI checked them per task
        self.budget, self.run_id, self.method, self.eval_key = budget, run_id, method, eval_key
        self.worst = {"error": 1.0, "params": 1e12, "macs": 1e15, "latency_ms": 1e6, "robust_error": 1.0,
                      **(worst or {})}
        self.runner = runner or SerialRunner()
        self.model_dir = model_dir
        self.generation = 0
        self.n_real = 0  # real evaluations done by this process
        self.history: list[tuple[list[int], dict, str]] = []  # (encoding, metrics, status) in order
        super().__init__(n_var=space.n_var, n_obj=len(self.objectives), n_ieq_constr=max(budget.n_constr, 0),
                         xl=space.xl, xu=space.xu, vtype=int,
                         exclude_from_serialization=["evaluator", "archive", "runner", "space"])

    def metrics_for(self, encodings) -> list[tuple[dict, str]]:
        """Archive lookups first, then real evaluations of the rest (possibly in parallel)."""
        out: list = [None] * len(encodings)
        todo = []
        for i, enc in enumerate(encodings):
            hit = self.archive.lookup(self.eval_key, enc)
            if hit is not None:
                out[i] = (self._metrics_of(hit), hit.status)
            else:
                todo.append(i)
        # identical encodings inside one population are evaluated once
        first: dict = {}
        unique = []
        for i in todo:
            key = encode_key(encodings[i])
            if key not in first:
                first[key] = i
                unique.append(i)
        for j, res in self.runner.map(self.evaluator, [encodings[i] for i in unique]):
            i = unique[j]
            out[i] = self._archive_result(encodings[i], res)
        for i in todo:
            if out[i] is None:
                out[i] = out[first[encode_key(encodings[i])]]
        return out

    def _metrics_of(self, cand) -> dict:
        m = {k: cand.metric(k) for k in OBJECTIVES}
        m.update(cand.extra)
        return m

    def _archive_result(self, encoding, res: EvalResult):
        status = res.status
        if status == "ok" and self.budget.n_constr and not self.budget.feasible(res.metrics):
            status = "infeasible"
        extra = dict(res.extra)
        cid = self.archive.add(self.run_id, self.method, generation=self.generation, encoding=encoding,
                               arch=res.arch, metrics=res.metrics, status=status, message=res.message,
                               eval_key=self.eval_key, extra=extra, seconds=res.seconds)
        if res.model is not None and self.model_dir is not None and status != "failed":
            from natkit.nets.io import save_model

            save_model(res.model, self.model_dir / str(cid))
        self.n_real += 1
        m = dict(res.metrics)
        m.update(extra)
        return m, status

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
