"""Records of the archive: a row's ``Status``, the immutable ``Candidate`` and ``Run``, how encodings are
keyed, the tables they live in, conversions between rows and records, and the non-dominated filter (pymoo)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

OBJECTIVES = ("error", "params", "macs", "latency_ms")


class Status(str, Enum):
    """A row's status; see the module docstring for what each value means."""

    OK = "ok"
    INFEASIBLE = "infeasible"
    FAILED = "failed"
    STALE = "stale"

    def __str__(self) -> str:
        return self.value


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
    status: str  # a Status value
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


# the archive's tables (natkit.core.archive creates them)
SCHEMA_VERSION = 1
APPLICATION_ID = 0x4E41544B  # "NATK" in the SQLite header: this file was created by natkit

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
_CLAIMS = """CREATE TABLE IF NOT EXISTS claims (
    eval_key TEXT NOT NULL, encoding TEXT NOT NULL, owner TEXT NOT NULL, heartbeat REAL NOT NULL,
    PRIMARY KEY (eval_key, encoding))"""
_NATKIT_TABLES = {"meta", "runs", "candidates"}

_COLS = ("id, run_id, method, generation, encoding, arch, error, params, macs, latency_ms, test_error, status, "
         "message, extra, seconds, created, eval_key")


def _cand(r) -> Candidate:
    """Raises ValueError/TypeError on a damaged row (bad JSON, text where a number belongs)."""
    nums = [_stored_num(v, col) for v, col in zip(r[6:11], OBJECTIVES + ("test_error",))]
    extra = json.loads(r[13] or "{}")
    if not isinstance(extra, dict):
        raise ValueError(f"extra is {type(extra).__name__}, not an object")
    if r[11] not in ("ok", "failed", "infeasible", "stale"):
        raise ValueError(f"unknown status {r[11]!r}")
    return Candidate(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]) if r[5] else None,
                     *nums, r[11], r[12] or "", extra, r[14], r[15], r[16] or "")


def _stored_num(v, col):
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return v
    raise ValueError(f"{col} holds {v!r}, not a number")


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
    for p in ("natkit", "torch", "torchvision", "pymoo", "torch-pruning", "thop", "numpy", "scikit-learn", "onnx",
              "onnxruntime"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    import platform

    out["python"] = platform.python_version()
    return out
