"""A table as search space and evaluator, and the budgeted run every table engine drives.

Every query goes through the task's ``ArchiveProblem`` (so candidates land in the archive like any
other method's, and ``--resume`` reads earlier answers back). The budget counts distinct
architectures this run has queried — read back from the archive or looked up in the table — so a
resumed run stops where an uninterrupted one would, and engines compare at equal numbers of
table queries.
"""

from __future__ import annotations

import time

import numpy as np

from natkit.core.archive import encode_key
from natkit.core.evaluator import Evaluator
from natkit.core.space import SearchSpace
from natkit.errors import ConfigError, NatkitError
from natkit.tabular.indicators import TableScorer


class TableSpace(SearchSpace):
    """One integer gene per position, ``0 .. n_choices - 1``; samples draw distinct table rows."""

    def __init__(self, table):
        self.table = table
        self.xl = np.zeros(table.n_var, dtype=int)
        self.xu = table.n_choices.astype(int) - 1

    def decode(self, x) -> dict:
        return {"table": self.table.name, "key": self.table.key_of(x)}

    def extremes(self) -> list[np.ndarray]:
        """The first and the last choice at every position."""
        return [self.xl.copy(), self.xu.copy()]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        rows = rng.choice(len(self.table), size=min(int(n), len(self.table)), replace=False)
        return self.table.X[rows].copy()

    def one_hot(self, X) -> np.ndarray:
        """Surrogate features: the choices are categories (e.g. identity vs two block types), coded with
        one indicator per choice except the first of each position (a full one-hot code is collinear
        with the linear tail of NAT's RBF surrogates)."""
        X = np.atleast_2d(np.asarray(X, dtype=int))
        width = self.table.n_choices - 1
        offsets = np.concatenate([[0], np.cumsum(width)[:-1]])
        out = np.zeros((len(X), int(width.sum()) + 1))  # +1: a dump column for the first choices
        out[np.arange(len(X))[:, None], np.where(X > 0, X - 1 + offsets, width.sum())] = 1.0
        return out[:, :-1]


class TableEvaluator(Evaluator):
    """A table lookup: one training run's error chosen by the seed, the costs, the run-mean error."""

    def __init__(self, table, seed: int):
        self.table, self.seed = table, int(seed)

    def settings(self) -> dict:
        return {"table": self.table.sha256, "seed": self.seed, "protocol": "one run per architecture, by seed"}

    def _evaluate(self, encoding):
        try:
            q = self.table.query(encoding, self.seed)
        except KeyError:
            raise NatkitError(f"architecture {self.table.key_of(encoding)} is not in table {self.table.name}") from None
        metrics = {"error": q["error"], **{c: q[c] for c in self.table.costs}}
        extra = {"error_mean": q["error_mean"], "table_run": q["table_run"]}
        return metrics, {"table": self.table.name, "key": q["table_key"]}, extra


class TableRun:
    """The budgeted run: ``evaluate(X)`` queries at most the remaining budget of new architectures
    (already-seen ones are free), archives them, then logs the generation's HV ratio and IGD."""

    def __init__(self, ctx, evaluations: int):
        table = ctx.task.table
        table.check_objectives(ctx.objectives)
        if ctx.budget.n_constr:
            missing = [k for k in ctx.budget.limits if k not in table.objectives]
            if missing:
                raise ConfigError(f"budget limit {missing[0]} names no column of table {table.name}")
        if evaluations < 1:
            raise ConfigError(f"option evaluations must be at least 1, got {evaluations}")
        self.ctx, self.table, self.objectives = ctx, table, list(ctx.objectives)
        self.space = TableSpace(table)
        self.evaluator = TableEvaluator(table, ctx.seed)
        F = table.mean([c for c in table.costs])
        worst = {c: float(10 * max(F[:, i].max(), 1.0)) for i, c in enumerate(table.costs)}
        self.problem = ctx.problem(self.space, self.evaluator, worst=worst)
        self.scorer = TableScorer(table, self.objectives)
        self.evaluations = int(evaluations)
        self.seen: dict = {}  # encode_key -> (encoding, metrics, status), in query order
        self.seen_rows: set = set()  # their table rows
        self.query_seconds = 0.0
        self.score_seconds = 0.0
        self.started = time.perf_counter()
        self.engine_trace: list[tuple[int, float]] = []  # (evaluations so far, engine seconds so far)
        self.log: list[dict] = []

    @property
    def remaining(self) -> int:
        return self.evaluations - len(self.seen)

    def evaluate(self, X) -> tuple[list[int], dict]:
        """Rows of ``X`` that were evaluated (seen ones, then new ones while budget lasts) and pymoo's
        output dict for them (F, and G under a budget)."""
        take, new, keys = [], 0, set()
        for i, x in enumerate(np.atleast_2d(X)):
            k = encode_key(self.space.repair(x))
            if k in self.seen or k in keys:
                take.append(i)
            elif new < self.remaining:
                take.append(i)
                keys.add(k)
                new += 1
        if not take:
            return [], {}
        t0 = time.perf_counter()
        start = len(self.problem.history)
        out = self.problem.evaluate(np.atleast_2d(X)[take], return_as_dictionary=True)
        for enc, m, status in self.problem.history[start:]:
            self.seen.setdefault(encode_key(enc), (enc, m, status))
            self.seen_rows.add(self.table.row(enc))
        self.query_seconds += time.perf_counter() - t0
        self.engine_trace.append((len(self.seen), self.engine_seconds))
        self._log_generation()
        return take, out

    @property
    def engine_seconds(self) -> float:
        """Wall time of the engine's own machinery: everything but table queries and scoring."""
        return max(time.perf_counter() - self.started - self.query_seconds - self.score_seconds, 0.0)

    def observed(self, feasible_only: bool = False):
        """Encodings and observed metrics (the seed's run) of everything queried, failures excluded."""
        ok = ("ok",) if feasible_only else ("ok", "infeasible")
        recs = [(e, m) for e, m, s in self.seen.values() if s in ok]
        X = np.array([e for e, _ in recs], dtype=int).reshape(-1, self.table.n_var)
        return X, [m for _, m in recs]

    def _log_generation(self) -> None:
        t0 = time.perf_counter()
        rows = [self.table.row(e) for e, _, s in self.seen.values() if s == "ok"]
        s = self.scorer.score([r for r in rows if r is not None])
        gen = self.problem.generation - 1
        self.ctx.archive.log_generation(self.ctx.run_id, gen, len(self.seen), s["hv"], s["front_size"])
        self.log.append({"generation": gen, "n_evals": len(self.seen), "real_queries": self.problem.n_real, **s})
        self.score_seconds += time.perf_counter() - t0
        self.ctx.log(f"generation {gen}: {len(self.seen)} evaluations, HV ratio {s['hv_ratio']:.4f}, "
                     f"IGD {s['igd']:.4f}, front {s['front_size']}")

    def summary(self) -> dict:
        engine = self.engine_seconds
        last = self.log[-1] if self.log else {}
        return {"evaluations": len(self.seen), "real_evaluations": self.problem.n_real,
                "hv_ratio": last.get("hv_ratio"), "igd": last.get("igd"),
                "exact_front_size": len(self.scorer.front_rows), "hv_bounds": dict(zip(self.objectives, self.scorer.bounds)),
                "engine_seconds": engine, "engine_seconds_per_evaluation": engine / max(len(self.seen), 1),
                "query_seconds": self.query_seconds}
