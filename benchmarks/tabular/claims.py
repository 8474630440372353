"""The registered tabular claims (``benchmarks/claims.toml``, ``tabular.*``) judged on a scored result.

Each entry names the subject engine, its baselines, budgets, objective pairs and seed count; the quantity
its rule reads is computed here from the per-cell medians of the HV ratio:

- ``gap_min``: the smallest (subject median - baseline median) over every baseline, budget and pair;
- ``hv_ratio_min``: the smallest subject median over every budget and pair.

A cell without all registered seeds leaves the quantity missing, so the claim gets no verdict (None).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.verdicts import judge
from natkit.report.claims import ClaimResult, load_registry, write_claims

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "results/tabular/results.json"


def quantities(entry: dict, result: dict) -> tuple[dict, list[str], list[str]]:
    """(values for the rule, the decisive cell in words, the compared cells in words, the cells missing seeds)."""
    subject, n_seeds = entry["subject"], entry["seeds"]["count"]
    gaps, mins, what, missing = [], [], [], []  # gaps and mins: (number, cell in words)

    def median(engines, name, b):
        cell = engines.get(name, {}).get(str(b))
        if cell is None or cell["hv_ratio"]["n"] != n_seeds:
            missing.append(f"{name}@{b} {pair}")
            return None
        return cell["hv_ratio"]["median"]

    for pair in entry["objectives"]:
        engines = result[pair]["engines"]
        for b in entry["budgets"]:
            mine = median(engines, subject, b)
            if mine is None:
                continue
            mins.append((mine, f"{pair} @{b}"))
            if not entry["baselines"]:
                what.append(f"{pair} @{b}: {subject} {mine:.4f}")
            for base in entry["baselines"]:
                theirs = median(engines, base["name"], b)
                if theirs is not None:
                    gaps.append((mine - theirs, f"{pair} @{b} vs {base['name']}"))
                    what.append(f"{pair} @{b}: {subject} {mine:.4f} vs {base['name']} {theirs:.4f}")
    values = {"hv_ratio_min": None if missing or not mins else min(mins)[0], "comparisons": what}
    words = f"lowest {subject} median HV ratio {min(mins)[0]:.4f} ({min(mins)[1]})" if mins else ""
    if entry["baselines"]:
        values["gap_min"] = None if missing or not gaps else min(gaps)[0]
        if gaps:
            words = f"smallest lead {min(gaps)[0]:+.4f} median HV ratio ({min(gaps)[1]})"
    return values, words, what, missing


def decide_claims(result: dict, provenance: dict, source: str = SOURCE,
                  registry: dict | None = None) -> list[ClaimResult]:
    reg = registry if registry is not None else load_registry()
    out = []
    for cid, entry in reg.items():
        if entry["method"] != "tabular":
            continue
        values, words, what, missing = quantities(entry, result)
        effect = (f"missing {', '.join(missing)}" if missing else f"{words}, over {len(what)} cells of "
                  f"{entry['seeds']['count']} seeds each")
        out.append(judge(cid, values, registry=reg, effect=effect, n=entry["seeds"]["count"], source=source,
                         ours=entry["subject"], baseline=", ".join(b["name"] for b in entry["baselines"]),
                         plot="results/tabular/hv_igd.png", provenance=provenance))
    return out


def rejudge(results_dir: Path = ROOT / "results" / "tabular") -> Path:
    """Judge the stored results.json again (no search runs) into claims.json."""
    from benchmarks.verdicts import run_provenance

    data = json.loads((results_dir / "results.json").read_text())
    claims = decide_claims(data["results"], run_provenance(data["stamp"], SOURCE))
    path = results_dir / "claims.json"
    if path.is_file():
        path.unlink()
    return write_claims(path, claims)
