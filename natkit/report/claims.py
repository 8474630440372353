"""The claims schema: a registry of claims written before the runs (benchmarks/claims.toml) and the
verdicts benchmarks write into results/<method>/claims.json, merged by claim id.

A registry entry (one ``[[claim]]`` table) fixes the statement, the statistic, the split, the
decision rule, the baselines with their compute and the seeds. A benchmark computes the quantities
its rule names and calls :func:`judge`, which evaluates the rule and stores the sha256 of the entry,
so a rule edited after its results exist shows in git and in the report (:func:`stale_rules`).

The rule is machine-evaluable: ``"<quantity> <op> <number>"`` clauses joined by ``and``, with op one of
``> >= < <= ==``, e.g. ``"ci_low > -0.5"`` or ``"ratio >= 1.8 and ci_low > 0"``. Entries of kind
``fact`` (arithmetic consequences, exact checks) and ``choice`` (a default a benchmark picked on
validation; its margin is the effect) carry no verdict unless they give a rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from natkit.errors import ConfigError

REGISTRY = Path(__file__).resolve().parents[2] / "benchmarks" / "claims.toml"
KINDS = ("claim", "fact", "choice")
REQUIRED = ("id", "method", "kind", "statement", "statistic", "split", "seeds")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|>|<)\s*([-+]?[0-9.]+(?:e[-+]?\d+)?)\s*$")


def load_registry(path: Path | str = REGISTRY) -> dict[str, dict]:
    """id -> entry; refuses duplicates, unknown kinds, missing fields and rules that do not parse."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"claims registry {path}: {e}") from None
    out: dict[str, dict] = {}
    for i, entry in enumerate(data.get("claim", [])):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise ConfigError(f"claims registry {path}: entry {i} ({entry.get('id', '?')}) lacks {', '.join(missing)}")
        if entry["kind"] not in KINDS:
            raise ConfigError(f"claims registry {path}: {entry['id']}: kind must be one of {KINDS}")
        if entry["kind"] == "claim" and not entry.get("rule"):
            raise ConfigError(f"claims registry {path}: claim {entry['id']} has no decision rule")
        if entry.get("rule"):
            parse_rule(entry["rule"])
        if entry["id"] in out:
            raise ConfigError(f"claims registry {path}: duplicate id {entry['id']!r}")
        out[entry["id"]] = entry
    return out


def entry_sha256(entry: dict) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def parse_rule(rule: str) -> list[tuple[str, str, float]]:
    clauses = []
    for part in re.split(r"\s+and\s+", rule.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise ConfigError(f"decision rule clause {part!r} is not '<quantity> <op> <number>'")
        clauses.append((m.group(1), m.group(2), float(m.group(3))))
    return clauses


def evaluate_rule(rule: str, values: dict) -> bool | None:
    """True/False by the rule; None when a quantity it needs is missing or not a number (e.g. n=1)."""
    result = True
    for name, op, threshold in parse_rule(rule):
        v = values.get(name)
        if v is None or isinstance(v, bool) and op != "==" or (isinstance(v, float) and math.isnan(v)):
            return None
        result = result and _OPS[op](float(v), threshold)
    return bool(result)


@dataclass
class ClaimResult:
    """One verdict (or fact, or choice) in a results/<method>/claims.json; ``tag`` is the id, or
    ``<id>@<setting>`` for an entry judged per setting."""
    tag: str
    id: str
    method: str
    kind: str
    statement: str
    rule: str | None
    holds: bool | None
    effect: str  # the statistic with its 95% interval, in words and numbers
    n: int | None  # independent units (seeds)
    values: dict  # the quantities the rule read
    ours: str = ""
    baseline: str = ""
    setting: str = ""
    compute: dict = field(default_factory=dict)  # {"method": {...}, "baselines": {...}} epochs, real evaluations
    note: str = ""
    plot: str | None = None
    registry_sha256: str = ""
    source: str = ""  # the results file the numbers come from
    provenance: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def judge(claim_id: str, values: dict, *, key: str = "", registry: dict | None = None, **fields) -> ClaimResult:
    """The verdict of registered claim ``claim_id`` on ``values`` (the quantities its rule names);
    ``key``: which of the entry's ``settings`` this is (required when it has settings)."""
    reg = registry if registry is not None else load_registry()
    if claim_id not in reg:
        raise ConfigError(f"claim {claim_id!r} is not in the registry {REGISTRY}")
    entry = reg[claim_id]
    settings = entry.get("settings")
    if settings and key not in settings:
        raise ConfigError(f"claim {claim_id}: setting {key!r} is not registered ({', '.join(settings)})")
    if key and not settings:
        raise ConfigError(f"claim {claim_id} has no settings; got {key!r}")
    rule = entry.get("rule") or None
    holds = evaluate_rule(rule, values) if rule else None
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
    return ClaimResult(tag=f"{claim_id}@{key}" if key else claim_id, id=claim_id, method=entry["method"], kind=entry["kind"], statement=entry["statement"],
                       rule=rule, holds=holds, values=clean, registry_sha256=entry_sha256(entry), **fields)


def write_claims(path: Path | str, results: list[ClaimResult], provenance: dict | None = None) -> Path:
    """Merge ``results`` into the claims file at ``path`` by tag (a new result replaces the old one with
    its tag; others are kept), ordered by the registry, written atomically."""
    path = Path(path)
    old = {}
    if path.is_file():
        old = {c["tag"]: c for c in json.loads(path.read_text()).get("claims", []) if "tag" in c}
    for r in results:
        d = r.as_dict()
        if provenance and not d.get("provenance"):
            d["provenance"] = provenance
        old[r.tag] = d
    reg = load_registry() if REGISTRY.is_file() else {}
    order = {k: i for i, k in enumerate(reg)}

    def rank(c):
        settings = reg.get(c["id"], {}).get("settings") or []
        sub = c["tag"].split("@", 1)[1] if "@" in c["tag"] else ""
        return order.get(c["id"], 10**6), settings.index(sub) if sub in settings else 0, c["tag"]

    claims = sorted(old.values(), key=rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"claims": claims}, indent=2, ensure_ascii=False, default=float) + "\n")
    os.replace(tmp, path)
    return path


def stale_rules(claims: list[dict], registry: dict | None = None) -> list[str]:
    """Ids whose stored registry hash differs from the registry's entry now (rule changed after the run)."""
    reg = registry if registry is not None else load_registry()
    return [c["id"] for c in claims if c["id"] not in reg or c.get("registry_sha256") != entry_sha256(reg[c["id"]])]
