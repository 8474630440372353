"""Decide registered claims (``benchmarks/claims.toml``) from the tabular results by their own rules."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path


def entry_hash(claim: dict) -> str:
    """sha256 of the registry entry as canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def decide_claims(result: dict, registry: Path, prefix: str) -> list[dict]:
    with open(registry, "rb") as f:
        claims = [c for c in tomllib.load(f).get("claim", []) if c["id"].startswith(prefix)]
    return [decide(c, result) for c in claims]


def decide(claim: dict, result: dict) -> dict:
    rule = claim["rule"]
    if rule["statistic"] != "median_hv_ratio":
        raise ValueError(f"claim {claim['id']}: unsupported statistic {rule['statistic']!r}")
    subject, checks, missing = rule["subject"], [], []
    n_seeds = claim["seeds"]["count"]
    for pair in claim["objectives"]:
        engines = result[pair]["engines"]
        for b in claim["budgets"]:
            cell = engines.get(subject, {}).get(str(b))
            if cell is None or cell["hv_ratio"]["n"] != n_seeds:
                missing.append(f"{subject}@{b} {pair}")
                continue
            mine = cell["hv_ratio"]["median"]
            if rule["compare"] == "greater_than_every_baseline":
                for base in claim["baselines"]:
                    other = engines.get(base["name"], {}).get(str(b))
                    if other is None or other["hv_ratio"]["n"] != n_seeds:
                        missing.append(f"{base['name']}@{b} {pair}")
                        continue
                    theirs = other["hv_ratio"]["median"]
                    checks.append((mine - theirs > rule["margin"], f"{pair} @{b}: {subject} {mine:.4f} vs "
                                                                    f"{base['name']} {theirs:.4f}"))
            elif rule["compare"] == "at_least":
                checks.append((mine >= rule["threshold"], f"{pair} @{b}: {subject} {mine:.4f} vs {rule['threshold']}"))
            else:
                raise ValueError(f"claim {claim['id']}: unsupported comparison {rule['compare']!r}")
    # missing runs leave a claim undecided (None), not failed
    holds = None if missing or not checks else all(ok for ok, _ in checks)
    failed = [txt for ok, txt in checks if not ok]
    detail = (f"missing {', '.join(missing)}" if missing else
              f"{len(checks)} comparisons, all pass" if holds else f"{len(failed)}/{len(checks)} fail: {'; '.join(failed)}")
    return {"id": claim["id"], "registry_hash": entry_hash(claim), "holds": holds, "detail": detail,
            "comparisons": [{"pass": ok, "what": txt} for ok, txt in checks]}
