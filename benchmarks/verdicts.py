"""Every registered verdict, re-derived from the stored results under the rules in benchmarks/claims.toml.

``python -m benchmarks.verdicts`` rewrites results/<method>/claims.json for every method from the stored
per-seed files (no training); ``--check`` exits 1 if a stored verdict's registry hash differs from its
entry now, or an entry names an unregistered id. Each method's ``benchmarks/<method>/verdicts.py`` holds the
derivation; its benchmarks call its ``update()`` when they finish.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from natkit.report import stats
from natkit.report.claims import ClaimResult, judge as _judge, load_registry, stale_rules, write_claims
from natkit.report.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
# perf is judged by its benchmark (stored runs again: python -m benchmarks.perf.throughput --rejudge PART=FILE)
METHODS = ["nat", "tascnet", "progressive", "ke", "lda", "scale", "hardware", "tabular"]
STARTED = time.time()


def load(rel: str) -> dict | None:
    p = ROOT / rel
    return json.loads(p.read_text()) if p.is_file() else None


def source_provenance(data: dict | None, rel: str) -> dict:
    """The provenance stored in a source file, or a statement that it predates provenance stamping."""
    if data and not data.get("provenance") and isinstance(data.get("stamp"), dict) and data["stamp"].get("commit"):
        return data["stamp"]  # the perf/scale benchmarks' stamp (benchmarks.perf.common.stamp)
    if data and data.get("provenance"):
        p = data["provenance"]
        if p.get("runs_predate_provenance"):  # a report regenerated from runs that predate provenance
            return {"predates_provenance": True, "file": rel, "regenerated_by": p.get("commit"),
                    "note": "tables regenerated from stored runs made before results carried provenance"}
        return p
    return {"predates_provenance": True, "file": rel,
            "note": "written before results carried provenance; the command that reproduces it is in "
                    "benchmarks/run_all.py (RUNS)"}


def pvals(p: stats.Paired, prefix: str = "") -> dict:
    """The quantities a rule may name, from a paired difference."""
    return {f"{prefix}mean": p.mean, f"{prefix}ci_low": p.lo, f"{prefix}ci_high": p.hi, f"{prefix}n": p.n}


def with_registered_compute(measured: dict | None, entry: dict) -> dict:
    """A claim's compute: what the benchmark measured (``{"method": ..., "baselines": ...}``), each part it
    did not measure taken from the registry entry (its ``compute`` and ``baselines``) and named in
    ``from_registry``, so every stored verdict says what the method and each baseline were given."""
    out = dict(measured or {})
    filled = []
    if not out.get("method") and entry.get("compute"):
        out["method"] = dict(entry["compute"])
        filled.append("method")
    if not out.get("baselines") and entry.get("baselines"):
        out["baselines"] = {b["name"]: {k: v for k, v in b.items() if k != "name"} for b in entry["baselines"]}
        filled.append("baselines")
    if filled:
        out["from_registry"] = filled
    return out


def judge(claim_id: str, values: dict, *, key: str = "", registry: dict | None = None, seeds=None,
          **fields) -> ClaimResult:
    """natkit's ``judge`` under this project's evidence rules. A claim's verdict records the compute of the
    method and of each baseline (measured, else registered: ``with_registered_compute``) and, given
    ``seeds`` (the seeds the statistic used), those seeds in ``compute["seeds"]``; data that covers other
    seeds than the entry registers, fewer or more, gets no verdict."""
    reg = registry if registry is not None else load_registry()
    entry = reg.get(claim_id)
    if entry is not None and entry["kind"] == "claim":
        fields["compute"] = with_registered_compute(fields.get("compute"), entry)
        if seeds is not None:
            fields["compute"]["seeds"] = list(seeds)
    res = _judge(claim_id, values, key=key, registry=reg, **fields)
    registered = entry.get("seeds")
    if seeds is not None and isinstance(registered, list) and sorted(seeds) != sorted(registered):
        # judged only on the seeds registered before the run: fewer is not enough, more is not allowed
        missing = sorted(set(registered) - set(seeds))
        extra = sorted(set(seeds) - set(registered))
        why = "; ".join(x for x in (f"registered seeds {missing} are not in the data" if missing else "",
                                    f"seeds {extra} are not registered" if extra else "") if x)
        res.holds = None
        res.effect = f"no verdict: {why}; {res.effect}"
    return res


def verdict(claim_id: str, values: dict, *, source: str, data: dict | None, key: str = "", **fields) -> ClaimResult:
    prov = {**provenance(STARTED), "derived_from": source, "source_provenance": source_provenance(data, source)}
    return judge(claim_id, values, key=key, source=source, provenance=prov, **fields)


def run_provenance(stamp: dict, source: str) -> dict:
    """Provenance of a verdict (re-)judged on the numbers of one stored run: the run's own commit, dirty flag,
    command, CPU and load (``stamp``, as that run wrote it), plus the code that judged them now."""
    from natkit.report.provenance import AT_START, command

    return {**stamp, "derived_from": source, "source_provenance": dict(stamp),
            "judged_by": {**AT_START, "command": command()}}


def update(method: str, results: list[ClaimResult]) -> Path:
    """Replace results/<method>/claims.json with ``results`` (stale tags of this method do not survive)."""
    path = RESULTS / method / "claims.json"
    if path.is_file():
        path.unlink()
    return write_claims(path, results)


def check() -> list[str]:
    reg = load_registry()
    problems = []
    for path in sorted(RESULTS.glob("*/claims.json")):
        claims = json.loads(path.read_text()).get("claims", [])
        for c in claims:
            if c.get("id") not in reg:
                problems.append(f"{path.relative_to(ROOT)}: unregistered claim {c.get('id') or c.get('claim')!r}")
            elif not c.get("provenance", {}).get("commit"):
                problems.append(f"{path.relative_to(ROOT)}: {c['tag']} has no provenance commit")
        problems += [f"{path.relative_to(ROOT)}: {t} was judged by another version of its rule"
                     for t in stale_rules([c for c in claims if c.get("id") in reg], reg)]
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="check ids and registry hashes, write nothing")
    ap.add_argument("--only", help="comma-separated methods")
    args = ap.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "every stored verdict names a registered claim judged by its current rule")
        return 1 if problems else 0
    for m in (args.only.split(",") if args.only else METHODS):
        mod = importlib.import_module(f"benchmarks.{m}.verdicts")
        path = mod.update()
        data = json.loads(path.read_text())["claims"]
        held = sum(c["holds"] is True for c in data)
        failed = sum(c["holds"] is False for c in data)
        print(f"{m}: {len(data)} entries, {held} hold, {failed} fail, {len(data) - held - failed} without verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
