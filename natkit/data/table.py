"""Published tabular NAS benchmarks (and a user's own sweeps) as tasks: the table is both the search
space and the evaluator, nothing is trained.

A table is described by a small TOML (docs/table_format.md): the data file (CSV, or JSON as a list of
records or an object of records keyed by architecture), the genes (choices per position), the accuracy
or error column(s) and their scale, and the cost columns. ``table:nas-bench-macro`` is the packaged
NAS-Bench-Macro (Apache-2.0, attribution in ``natkit/data/tables/``); ``table:FILE.json`` reads a
NAS-Bench-Macro JSON as published; ``table:FILE.toml`` any described table.

Several training runs per architecture: ``query(x, seed)`` returns one run chosen by the seed (the
noisy protocol of tabular benchmarks); ``mean`` gives the run average that reports and exact fronts use.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from natkit.errors import ConfigError

TABLES_DIR = Path(__file__).resolve().parent / "tables"
PACKAGED = {"nas-bench-macro": TABLES_DIR / "nas-bench-macro.toml"}
COST_NAME = re.compile(r"^(params|macs|flops|latency_[a-z0-9_]+)$")
_KEYS = {"table": {"name", "file", "source", "license"},
         "genes": {"key", "columns", "alphabet", "choices", "length", "separator", "pattern"},
         "metrics": {"accuracy", "error", "scale"}}
_CACHE: dict = {}


@dataclass(frozen=True)
class Table:
    """Rows of architectures: ``X`` (choice indices), ``error_runs`` (fraction, NaN where a run is
    missing), ``costs`` (name -> values). ``choices[i]`` names the options of position ``i``."""

    name: str
    path: str
    sha256: str
    source: str
    choices: tuple
    keys: tuple  # one architecture string per row, as the table spells it
    X: np.ndarray
    error_runs: np.ndarray
    costs: dict
    separator: str = ""
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._index.update({tuple(int(v) for v in x): i for i, x in enumerate(self.X)})

    # -- the space ---------------------------------------------------------------------------------
    @property
    def n_var(self) -> int:
        return len(self.choices)

    @property
    def n_choices(self) -> np.ndarray:
        return np.array([len(c) for c in self.choices])

    @property
    def objectives(self) -> list[str]:
        return ["error"] + list(self.costs)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def complete(self) -> bool:
        return len(self) == int(np.prod(self.n_choices.astype(float)))

    def row(self, x) -> int | None:
        return self._index.get(tuple(int(v) for v in x))

    def key_of(self, x) -> str:
        """The table's own key of ``x``; for an architecture not in it, its choices joined."""
        row = self.row(x)
        if row is not None:
            return self.keys[row]
        return self.separator.join(self.choices[i][int(v)] for i, v in enumerate(x))

    # -- evaluation --------------------------------------------------------------------------------
    def run_index(self, row: int, seed: int) -> int:
        """Which training run a query with ``seed`` sees: a stable hash of (seed, architecture), so one
        seed always sees the same run of an architecture and different seeds see different runs."""
        runs = np.flatnonzero(~np.isnan(self.error_runs[row]))
        h = hashlib.sha256(f"{int(seed)}:{self.keys[row]}".encode()).digest()
        return int(runs[int.from_bytes(h[:8], "little") % len(runs)])

    def query(self, x, seed: int) -> dict:
        """One run's error (chosen by ``seed``) and the costs; KeyError for an architecture not in it."""
        row = self.row(x)
        if row is None:
            raise KeyError(self.key_of(x))
        r = self.run_index(row, seed)
        out = {"error": float(self.error_runs[row, r]), "table_run": r,
               "error_mean": float(self.error_mean[row]), "table_key": self.keys[row]}
        out.update({c: float(v[row]) for c, v in self.costs.items()})
        return out

    @property
    def error_mean(self) -> np.ndarray:
        return np.nanmean(self.error_runs, axis=1)

    def mean(self, objectives, rows=None) -> np.ndarray:
        """Objective matrix (run-mean error, costs) of ``rows`` (default: every row)."""
        cols = []
        for o in objectives:
            if o == "error":
                cols.append(self.error_mean)
            elif o in self.costs:
                cols.append(self.costs[o])
            else:
                raise ConfigError(f"objective {o!r} is not in table {self.name} (it has {', '.join(self.objectives)})")
        F = np.column_stack(cols).astype(float)
        return F if rows is None else F[np.asarray(rows, dtype=int)]

    def check_objectives(self, objectives) -> None:
        self.mean(objectives, rows=[])

    def describe(self) -> dict:
        return {"name": self.name, "file": self.path, "sha256": self.sha256, "source": self.source,
                "architectures": len(self), "positions": self.n_var, "choices": [list(c) for c in self.choices],
                "runs_per_architecture": int(self.error_runs.shape[1]), "objectives": self.objectives,
                "complete": self.complete}


class TableTask:
    """What a method receives as ``ctx.task`` on a table task (no images: the table is the data)."""

    def __init__(self, spec: str, table: Table):
        self.spec, self.table = spec, table
        self.name = f"table:{table.name}"
        self.source = f"table {table.name} ({table.path}; {table.source or 'no source given'})"
        self.num_classes = None

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "sizes": {"architectures": len(self.table)},
                "source": self.source, "table": self.table.describe()}


def is_table_spec(spec) -> bool:
    return isinstance(spec, str) and spec.startswith("table:")


def load_table_task(spec: str) -> TableTask:
    return TableTask(spec, load_table(spec[len("table:"):]))


def load_table(ref: str) -> Table:
    """A packaged name, a ``.toml`` description or a NAS-Bench-Macro ``.json`` as published."""
    if not ref:
        raise ConfigError("table task needs a name or a path: table:nas-bench-macro or table:FILE.toml")
    if ref in PACKAGED:
        return _load_described(PACKAGED[ref], None)
    p = Path(ref)
    if not p.is_file():
        raise ConfigError(f"table not found: {ref} (packaged tables: {', '.join(PACKAGED)}; or a .toml/.json path)")
    if p.suffix.lower() == ".toml":
        return _load_described(p, None)
    if p.suffix.lower() == ".json":  # NAS-Bench-Macro's JSON as published: the packaged description
        return _load_described(PACKAGED["nas-bench-macro"], p)
    raise ConfigError(f"table {p}: describe a {p.suffix or 'data'} file with a TOML (docs/table_format.md) "
                      f"and pass table:FILE.toml")


def _load_described(toml_path: Path, data_override: Path | None) -> Table:
    key = (str(toml_path.resolve()), str(data_override.resolve()) if data_override else None)
    data_path = data_override
    desc = _read_description(toml_path)
    if data_path is None:
        data_path = (toml_path.parent / desc["table"]["file"]).resolve()
    if not data_path.is_file():
        raise ConfigError(f"table file {data_path} named in {toml_path} does not exist")
    stamp = (key, data_path.stat().st_mtime_ns, data_path.stat().st_size, toml_path.stat().st_mtime_ns)
    if stamp in _CACHE:
        return _CACHE[stamp]
    raw = data_path.read_bytes()
    records = _read_records(data_path, raw, expect_mapping=data_override is not None)
    table = _build(desc, records, data_path, hashlib.sha256(raw).hexdigest(), toml_path)
    _CACHE[stamp] = table
    return table


def _read_description(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            desc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}") from None
    for section in ("table", "genes", "metrics", "costs"):
        if not isinstance(desc.get(section), dict):
            raise ConfigError(f"{path} needs a [{section}] table (docs/table_format.md)")
    unknown = sorted(set(desc) - {"table", "genes", "metrics", "costs"})
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] in {path}; allowed: table, genes, metrics, costs")
    for section, allowed in _KEYS.items():
        bad = sorted(set(desc[section]) - allowed)
        if bad:
            raise ConfigError(f"unknown key {bad[0]!r} in [{section}] of {path}; allowed: {', '.join(sorted(allowed))}")
    if not isinstance(desc["table"].get("file"), str) or not desc["table"]["file"]:
        raise ConfigError(f"[table] of {path} needs file = \"DATA.csv\" or \"DATA.json\"")
    return desc


def _read_records(path: Path, raw: bytes, expect_mapping: bool) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"table {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            recs = []
            for k, v in data.items():
                if not isinstance(v, dict):
                    raise ConfigError(f"table {path}: entry {k!r} is not an object of metrics")
                recs.append({"key": k, **v})
            return recs
        if expect_mapping or not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConfigError(f"table {path}: expected "
                              f"{'an object of architectures (NAS-Bench-Macro format)' if expect_mapping else 'a list of records or an object of records'}")
        return data
    if suffix == ".csv":
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"table {path} is not a readable CSV: {exc}") from None
        return rows
    raise ConfigError(f"table file {path} must be .csv or .json")


def _build(desc: dict, records: list[dict], data_path: Path, sha: str, where: Path) -> Table:
    if not records:
        raise ConfigError(f"table {data_path} has no rows")
    genes, metrics, costs = desc["genes"], desc["metrics"], desc["costs"]
    choices, columns, sep, key_col = _genes(genes, where)
    pattern = _pattern(genes, where)
    n_var = len(choices)
    # accuracy or error: one column (possibly list-valued: several runs) or a list of run columns
    if ("accuracy" in metrics) == ("error" in metrics):
        raise ConfigError(f"[metrics] of {where} needs exactly one of accuracy = COLUMN(S) or error = COLUMN(S)")
    kind = "accuracy" if "accuracy" in metrics else "error"
    run_cols = metrics[kind] if isinstance(metrics[kind], list) else [metrics[kind]]
    if not run_cols or not all(isinstance(c, str) and c for c in run_cols):
        raise ConfigError(f"[metrics] {kind} of {where} must be a column name or a list of column names")
    scale = metrics.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale not in (1, 100):
        raise ConfigError(f"[metrics] scale of {where} must be 1 (fractions) or 100 (percent), got {scale!r}")
    for name, col in costs.items():
        if not COST_NAME.match(name):
            raise ConfigError(f"cost {name!r} in [costs] of {where}: name costs params, macs, flops or "
                              f"latency_<device>")
        if not isinstance(col, str) or not col:
            raise ConfigError(f"cost {name} in [costs] of {where} must name a column")
    if not costs:
        raise ConfigError(f"[costs] of {where} names no cost column (e.g. params = \"params\")")

    X = np.empty((len(records), n_var), dtype=np.int64)
    keys, runs_list = [], []
    cost_vals = {c: np.empty(len(records)) for c in costs}
    index = [{s: j for j, s in enumerate(ch)} for ch in choices]
    out_sep = sep if key_col is not None and "pattern" not in genes else ","
    for i, rec in enumerate(records):
        where_row = f"row {i + 1} of {data_path.name}"
        if key_col is not None:
            arch = _field(rec, key_col, where_row)
            arch = str(arch)
            symbols = (pattern.findall(arch) if pattern is not None else list(arch) if sep == "" else arch.split(sep))
            if len(symbols) != n_var:
                raise ConfigError(f"{where_row}: architecture {arch!r} has {len(symbols)} positions, expected {n_var}")
        else:
            symbols = [str(_field(rec, c, where_row)).strip() for c in columns]
        for j, s in enumerate(symbols):
            if s not in index[j]:
                raise ConfigError(f"{where_row}: {s!r} at position {j} is not one of {', '.join(choices[j])}")
            X[i, j] = index[j][s]
        keys.append(arch if key_col is not None else ",".join(symbols))  # as the table spells it
        vals = []
        for c in run_cols:
            v = _field(rec, c, where_row)
            vals.extend(v if isinstance(v, list) else [v])
        vals = [_number(v, f"{kind} in {where_row}") for v in vals]
        for v in vals:
            if not 0 <= v <= scale:
                raise ConfigError(f"{where_row}: {kind} {v} outside [0, {scale}] (set [metrics] scale)")
        runs_list.append([v / scale if kind == "error" else 1.0 - v / scale for v in vals])
        for c, col in costs.items():
            v = _number(_field(rec, col, where_row), f"{c} in {where_row}")
            if v < 0:
                raise ConfigError(f"{where_row}: cost {c} is negative ({v})")
            cost_vals[c][i] = v
    width = max(len(r) for r in runs_list)
    error_runs = np.full((len(records), width), np.nan)
    for i, r in enumerate(runs_list):
        error_runs[i, :len(r)] = r
    _, first, counts = np.unique(X, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = keys[int(first[np.argmax(counts > 1)])]
        raise ConfigError(f"table {data_path.name}: architecture {dup!r} appears more than once")
    name = desc["table"].get("name") or data_path.stem
    return Table(name=str(name), path=str(data_path), sha256=sha, source=str(desc["table"].get("source", "")),
                 choices=tuple(tuple(c) for c in choices), keys=tuple(keys), X=X, error_runs=error_runs,
                 costs=cost_vals, separator=out_sep)


def _genes(genes: dict, where: Path):
    if ("key" in genes) == ("columns" in genes):
        raise ConfigError(f"[genes] of {where} needs exactly one of key = COLUMN (one architecture string) "
                          f"or columns = [one column per position]")
    if ("alphabet" in genes) == ("choices" in genes):
        raise ConfigError(f"[genes] of {where} needs exactly one of alphabet = [...] (same choices at every "
                          f"position) or choices = [[...], ...] (per position)")
    sep = genes.get("separator", "")
    if not isinstance(sep, str):
        raise ConfigError(f"[genes] separator of {where} must be a string")
    columns = genes.get("columns")
    if columns is not None and (not isinstance(columns, list) or not columns
                                or not all(isinstance(c, str) and c for c in columns)):
        raise ConfigError(f"[genes] columns of {where} must be a non-empty list of column names")
    if "alphabet" in genes:
        alpha = _symbols(genes["alphabet"], "alphabet", where)
        n = len(columns) if columns is not None else genes.get("length")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"[genes] of {where}: with key and alphabet, give length = number of positions")
        choices = [alpha] * n
    else:
        raw = genes["choices"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"[genes] choices of {where} must be a list with one list of choices per position")
        choices = [_symbols(c, f"choices[{i}]", where) for i, c in enumerate(raw)]
        if columns is not None and len(columns) != len(choices):
            raise ConfigError(f"[genes] of {where}: {len(columns)} columns but {len(choices)} choice lists")
    if "length" in genes and len(choices) != genes["length"]:
        raise ConfigError(f"[genes] of {where}: length {genes['length']} does not match {len(choices)} positions")
    key_col = genes.get("key")
    if key_col is not None and (not isinstance(key_col, str) or not key_col):
        raise ConfigError(f"[genes] key of {where} must name a column")
    if key_col is not None and sep == "" and "pattern" not in genes and any(len(s) != 1 for ch in choices for s in ch):
        raise ConfigError(f"[genes] of {where}: symbols longer than one character need separator = \",\" (or another)")
    return choices, columns, sep, key_col


def _pattern(genes: dict, where: Path):
    """``pattern``: a regular expression whose matches (its one group, if it has one) are the symbols
    of an architecture string, e.g. NAS-Bench-201's ``|nor_conv_3x3~0|+|...``."""
    if "pattern" not in genes:
        return None
    if "key" not in genes or "separator" in genes:
        raise ConfigError(f"[genes] pattern of {where} goes with key = COLUMN and without separator")
    try:
        rx = re.compile(str(genes["pattern"]))
    except re.error as exc:
        raise ConfigError(f"[genes] pattern of {where} is not a regular expression: {exc}") from None
    if rx.groups > 1:
        raise ConfigError(f"[genes] pattern of {where} may have at most one group")
    return rx


def _symbols(v, what, where) -> list[str]:
    if not isinstance(v, list) or len(v) < 2 or not all(isinstance(s, (str, int)) and not isinstance(s, bool) for s in v):
        raise ConfigError(f"[genes] {what} of {where} must list at least two choices (strings)")
    out = [str(s) for s in v]
    if len(set(out)) != len(out):
        raise ConfigError(f"[genes] {what} of {where} repeats a choice")
    return out


def _field(rec: dict, col: str, where: str):
    if col not in rec or rec[col] is None or rec[col] == "":
        raise ConfigError(f"{where}: column {col!r} is missing or empty")
    return rec[col]


def _number(v, what: str) -> float:
    if isinstance(v, bool):
        raise ConfigError(f"{what} is not a number: {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{what} is not finite: {v!r}")
    return x
