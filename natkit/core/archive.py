"""The Pareto archive: every evaluated candidate of a task, in SQLite.

Contract (what every caller may rely on):
- one transaction per finished evaluation (``add`` commits before returning), WAL journal, so a
  killed process loses at most the evaluation in flight and concurrent writers lose nothing;
- records come back as immutable ``Candidate`` objects;
- ``lookup(eval_key, encoding)`` finds an earlier ``ok``/``infeasible`` result of the same evaluator
  settings, so a resumed or repeated search does not evaluate it again.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from natkit.errors import NatkitError

SCHEMA_VERSION = 1
OBJECTIVES = ("error", "params", "macs", "latency_ms")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, task TEXT NOT NULL,
    config TEXT NOT NULL, seed INTEGER, versions TEXT, status TEXT DEFAULT 'running',
    started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER REFERENCES runs(id), method TEXT NOT NULL,
    generation INTEGER, eval_key TEXT, encoding TEXT NOT NULL, arch TEXT,
    error REAL, params REAL, macs REAL, latency_ms REAL, test_error REAL,
    status TEXT NOT NULL, message TEXT, extra TEXT, seconds REAL, created REAL);
CREATE INDEX IF NOT EXISTS cand_lookup ON candidates(eval_key, encoding);
CREATE TABLE IF NOT EXISTS generations (
    run_id INTEGER, generation INTEGER, n_evals INTEGER, hv REAL, front_size INTEGER, created REAL,
    PRIMARY KEY (run_id, generation));
"""


@dataclass(frozen=True)
class Candidate:
    id: int
    run_id: int
    method: str
    generation: int
    encoding: object
    arch: object
    error: float | None
    params: float | None
    macs: float | None
    latency_ms: float | None
    test_error: float | None
    status: str
    message: str
    extra: dict
    seconds: float | None
    created: float
    eval_key: str = ""

    def metric(self, name: str):
        if name in OBJECTIVES or name == "test_error":
            return getattr(self, name)
        return self.extra.get(name)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Run:
    id: int
    method: str
    task: str
    config: dict
    seed: int
    versions: dict
    status: str
    started: float
    finished: float | None


def encode_key(encoding) -> str:
    return json.dumps(encoding, sort_keys=True, separators=(",", ":"), default=json_plain)


def json_plain(o):
    """``json.dumps`` default for numpy scalars and arrays (anything else as its string)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _retry_locked(fn, attempts: int):
    """``fn()``, called again after a growing pause while SQLite answers "database is locked"."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 1.0))


class Archive:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes creating the same archive at once can meet SQLite's deadlock check (switching to
        # WAL, or two schema transactions upgrading their locks), which fails at once with "database is
        # locked" instead of waiting on the busy timeout; opening again a moment later succeeds.
        try:
            _retry_locked(self._open, attempts=40)
        except sqlite3.DatabaseError as exc:
            raise NatkitError(f"cannot open archive {self.path}: {exc}") from None

    def _open(self):
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise NatkitError(f"archive {self.path} has schema {row[0]}, this natkit reads {SCHEMA_VERSION}")
        except BaseException:
            self._db.close()
            raise

    def close(self):
        self._db.close()

    def _write(self, sql, args):
        return _retry_locked(lambda: self._transaction(sql, args), attempts=20)

    def _transaction(self, sql, args):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(sql, args)
            self._db.execute("COMMIT")
            return cur.lastrowid
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # runs -------------------------------------------------------------------------------------
    def start_run(self, method: str, task: str, config: dict, seed: int) -> int:
        return self._write("INSERT INTO runs (method, task, config, seed, versions, started) VALUES (?,?,?,?,?,?)",
                           (method, task, encode_key(config), int(seed), json.dumps(package_versions()), time.time()))

    def finish_run(self, run_id: int, status: str = "done") -> None:
        self._write("UPDATE runs SET status=?, finished=? WHERE id=?", (status, time.time(), run_id))

    def runs(self) -> list[Run]:
        rows = self._db.execute("SELECT id, method, task, config, seed, versions, status, started, finished "
                                "FROM runs ORDER BY id").fetchall()
        return [Run(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "{}"), r[6], r[7], r[8])
                for r in rows]

    def run(self, run_id: int) -> Run:
        for r in self.runs():
            if r.id == run_id:
                return r
        raise NatkitError(f"no run {run_id} in {self.path}")

    # candidates -------------------------------------------------------------------------------
    def add(self, run_id: int, method: str, *, generation: int, encoding, arch=None, metrics: dict | None = None,
            status: str = "ok", message: str = "", eval_key: str = "", test_error=None, extra=None,
            seconds=None) -> int:
        if status not in ("ok", "failed", "infeasible"):
            raise ValueError(f"bad status {status!r}")
        metrics = dict(metrics or {})
        extra = dict(extra or {})
        for k in list(metrics):
            if k not in OBJECTIVES:
                extra[k] = metrics.pop(k)
        vals = [_num(metrics.get(k)) for k in OBJECTIVES]
        return self._write(
            "INSERT INTO candidates (run_id, method, generation, eval_key, encoding, arch, error, params, macs, "
            "latency_ms, test_error, status, message, extra, seconds, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, method, int(generation), eval_key, encode_key(encoding), encode_key(arch), *vals,
             _num(test_error), status, message, encode_key(extra), _num(seconds), time.time()))

    def mark_stale(self, cand_ids, reason: str = "superseded by a later evaluation") -> None:
        """Status ``stale``: kept for the record, off every front (e.g. NAT rows whose supernet weights
        have since been adapted and re-evaluated)."""
        for cid in cand_ids:
            self._write("UPDATE candidates SET status='stale', message=? WHERE id=? AND status IN ('ok','infeasible')",
                        (reason, int(cid)))

    def set_test_error(self, cand_id: int, value: float) -> None:
        self._write("UPDATE candidates SET test_error=? WHERE id=?", (float(value), cand_id))

    def lookup(self, eval_key: str, encoding) -> Candidate | None:
        row = self._db.execute(
            f"SELECT {_COLS} FROM candidates WHERE eval_key=? AND encoding=? AND status IN ('ok','infeasible') "
            "ORDER BY id LIMIT 1", (eval_key, encode_key(encoding))).fetchone()
        return _cand(row) if row else None

    def get(self, cand_id: int) -> Candidate:
        row = self._db.execute(f"SELECT {_COLS} FROM candidates WHERE id=?", (int(cand_id),)).fetchone()
        if row is None:
            raise NatkitError(f"no candidate with id {cand_id} in {self.path}")
        return _cand(row)

    def candidates(self, method=None, run_id=None, status=None) -> list[Candidate]:
        sql, args = f"SELECT {_COLS} FROM candidates WHERE 1=1", []
        for col, val in (("method", method), ("run_id", run_id), ("status", status)):
            if val is None:
                continue
            vals = [val] if isinstance(val, (str, int)) else list(val)
            sql += f" AND {col} IN ({','.join('?' * len(vals))})"
            args += vals
        return [_cand(r) for r in self._db.execute(sql + " ORDER BY id", args).fetchall()]

    def set_extra(self, cand_id: int, extra: dict) -> None:
        self._write("UPDATE candidates SET extra=? WHERE id=?", (encode_key(dict(extra)), int(cand_id)))

    def front(self, objectives=("error", "macs"), method=None, run_id=None, include_chance=False) -> list[Candidate]:
        """Non-dominated ``ok`` candidates over ``objectives`` (all minimised); candidates flagged as at
        chance (``extra["chance"]``, natkit/core/chance.py) are left out unless ``include_chance``."""
        cands = [c for c in self.candidates(method=method, run_id=run_id, status="ok")
                 if all(c.metric(o) is not None for o in objectives) and (include_chance or not c.extra.get("chance"))]
        if not cands:
            return []
        F = np.array([[c.metric(o) for o in objectives] for c in cands], dtype=float)
        return [cands[i] for i in nondominated(F)]

    # generations ------------------------------------------------------------------------------
    def log_generation(self, run_id: int, generation: int, n_evals: int, hv: float, front_size: int) -> None:
        self._write("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?)",
                    (run_id, int(generation), int(n_evals), float(hv), int(front_size), time.time()))

    def generations(self, run_id: int | None = None) -> list[dict]:
        sql = "SELECT run_id, generation, n_evals, hv, front_size FROM generations"
        rows = self._db.execute(sql + (" WHERE run_id=?" if run_id else "") + " ORDER BY run_id, generation",
                                (run_id,) if run_id else ()).fetchall()
        return [dict(zip(("run_id", "generation", "n_evals", "hv", "front_size"), r)) for r in rows]

    # export -----------------------------------------------------------------------------------
    def to_json(self, cands: list[Candidate]) -> str:
        return "\n".join(json.dumps(_flat(c), default=json_plain) for c in cands)

    def to_csv(self, cands: list[Candidate]) -> str:
        buf = io.StringIO()
        rows = [_flat(c) for c in cands]
        cols = list(rows[0]) if rows else ["id", "method", "error", "params", "macs", "status"]
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
        return buf.getvalue()


_COLS = ("id, run_id, method, generation, encoding, arch, error, params, macs, latency_ms, test_error, status, "
         "message, extra, seconds, created, eval_key")


def _cand(r) -> Candidate:
    return Candidate(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]) if r[5] else None,
                     *r[6:11], r[11], r[12] or "", json.loads(r[13] or "{}"), r[14], r[15], r[16] or "")


def _flat(c: Candidate) -> dict:
    d = {k: getattr(c, k) for k in ("id", "run_id", "method", "generation", "status", "error", "params", "macs",
                                     "latency_ms", "test_error")}
    d.update({k: v for k, v in c.extra.items() if k not in d})
    d["encoding"], d["arch"], d["message"] = c.encoding, c.arch, c.message
    return d


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def nondominated(F: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of ``F`` (minimisation), via pymoo; duplicates kept once."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    if len(F) == 0:
        return []
    _, first = np.unique(F, axis=0, return_index=True)
    first = np.sort(first)
    idx = NonDominatedSorting().do(F[first], only_non_dominated_front=True)
    return sorted(int(first[i]) for i in idx)


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("natkit", "torch", "torchvision", "pymoo", "torch-pruning", "thop", "numpy", "scikit-learn"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    import platform

    out["python"] = platform.python_version()
    return out
