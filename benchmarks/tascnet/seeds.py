"""TASCNet's two claims over several seeds: gathers ``transfer.json`` of seed 0 (``results/tascnet``)
and of further seeds (``results/tascnet/seeds/seed<N>/transfer.json``, each written by
``benchmarks.tascnet.transfer --seed N --out results/tascnet/seeds/seed<N>``) and reports, per network:

- the picked front member (smallest MACs with val accuracy >= conventional transfer's) vs conventional
  transfer: test accuracy, parameter and MAC reductions, mean +- std and per seed;
- stage 2 vs L1-magnitude pruning at matched MACs: the paired test-accuracy difference.

One seed of digits has 359 test images (one image = 0.28 points), so only a multi-seed mean says
more than the noise. Writes ``seeds.json`` / ``seeds.md``; the verdicts under the registered rules
(benchmarks/claims.toml, ``tascnet.*``) go to ``results/tascnet/claims.json`` via
``benchmarks.tascnet.verdicts``. Seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from natkit.report import stats
from natkit.report.provenance import stamp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "tascnet"
TAG = "multi-seed"


def _runs() -> dict[int, dict]:
    runs = {}
    for path in [OUT / "transfer.json", *sorted((OUT / "seeds").glob("seed*/transfer.json"))]:
        data = json.loads(path.read_text())
        runs[int(data["setting"]["seed"])] = data
    return runs


def _ms(values) -> str:
    return stats.summarize(values).fmt(scale=100)


def summarise(runs: dict[int, dict]) -> tuple[dict, list[dict], list[str]]:
    seeds = sorted(runs)
    nets = [n for n in runs[seeds[0]]["nets"] if all(n in runs[s]["nets"] for s in seeds)]
    summary, claims = {}, []
    md = ["# TASCNet over seeds", "", f"Seeds {seeds}; each seed is one full `benchmarks.tascnet.transfer` run "
          "(source pretraining cached and shared, target splits fixed, the search and all training seeded).", ""]
    for net in nets:
        rows = []
        for s in seeds:
            r = runs[s]["nets"][net]
            base = r["conventional"][0]
            p = r["picked"]
            pairs = [q for q in r.get("stage2_vs_l1") or [] if "l1_test_acc" in q]
            wm = (r.get("width_same_time") or {}).get("member") or {}
            rows.append({"seed": s, "base_test": base["test_acc"], "all_test": r["conventional"][1]["test_acc"],
                         "ours_test": p["test_acc"], "params_red": 1 - p["params"] / base["params"],
                         "macs_red": 1 - p["macs"] / base["macs"],
                         "holds": bool(p["test_acc"] >= base["test_acc"] and p["params"] <= 0.5 * base["params"]
                                       and p["macs"] <= 0.5 * base["macs"]),
                         "s2_minus_l1": [q["ours_test_acc"] - q["l1_test_acc"] for q in pairs],
                         "width_test": wm.get("test_acc")})
        d_transfer = [r["ours_test"] - r["base_test"] for r in rows]
        d_l1 = [x for r in rows for x in r["s2_minus_l1"]]
        summary[net] = {"rows": rows, "mean_transfer_diff": float(np.mean(d_transfer)),
                        "mean_s2_minus_l1": float(np.mean(d_l1)) if d_l1 else None}
        size_ok = all(r["params_red"] >= 0.5 and r["macs_red"] >= 0.5 for r in rows)
        setting = (f"{net}, fashion-mnist -> digits, seeds {seeds}, the benchmarks.tascnet.transfer setting per seed; "
                   "member picked on validation")
        claims.append({
            "claim": "TASCNet's final front has a network with equal or better test accuracy than conventional "
                     "transfer and >= 50% fewer parameters and MACs (mean over seeds)",
            "setting": setting,
            "ours": f"test acc {_ms([r['ours_test'] for r in rows])}%, params -{100 * min(r['params_red'] for r in rows):.0f}% "
                    f"and MACs -{100 * min(r['macs_red'] for r in rows):.0f}% or more; holds in "
                    f"{sum(r['holds'] for r in rows)}/{len(rows)} seeds",
            "baseline": f"conventional transfer (deeper layers) test acc {_ms([r['base_test'] for r in rows])}% "
                        f"(all layers: {_ms([r['all_test'] for r in rows])}%)",
            "holds": bool(np.mean(d_transfer) >= 0 and size_ok),
            "plot": f"results/tascnet/transfer_{net}.png", "benchmark": TAG})
        if d_l1:
            claims.append({
                "claim": "stage 2 (most similar filter trajectories) is at least as accurate as L1-magnitude "
                         "channel pruning at the same MACs (mean paired difference over seeds)",
                "setting": f"{net}, every stage-2 front member compared in benchmarks.tascnet.transfer, seeds {seeds}",
                "ours": f"stage 2 minus L1: {100 * np.mean(d_l1):+.2f} points mean over {len(d_l1)} pairs "
                        f"(stage 2 ahead or equal in {sum(x >= 0 for x in d_l1)})",
                "baseline": "Torch-Pruning L1 magnitude to the same MACs, same fine-tuning epochs",
                "holds": bool(np.mean(d_l1) >= 0),
                "plot": f"results/tascnet/stage2_vs_l1_{net}.png", "benchmark": TAG})
        md += [f"## {net}", "", "| seed | conventional (deeper) test acc | all layers | TASCNet picked test acc | "
               "params | MACs | holds | width, same wall time, test acc | stage 2 - L1 (points) |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            md.append(f"| {r['seed']} | {100 * r['base_test']:.2f} | {100 * r['all_test']:.2f} | {100 * r['ours_test']:.2f} | "
                      f"-{100 * r['params_red']:.0f}% | -{100 * r['macs_red']:.0f}% | {'yes' if r['holds'] else 'no'} | "
                      f"{'' if r['width_test'] is None else format(100 * r['width_test'], '.2f')} | "
                      + ", ".join(f"{100 * x:+.2f}" for x in r["s2_minus_l1"]) + " |")
        md += ["", f"Mean TASCNet minus conventional transfer: {100 * np.mean(d_transfer):+.2f} points; "
               + (f"mean stage 2 minus L1: {100 * np.mean(d_l1):+.2f} points." if d_l1 else ""), ""]
    return summary, claims, md


def main() -> int:
    runs = _runs()
    if len(runs) < 2:
        print("tascnet_seeds: fewer than two seeds stored; run benchmarks.tascnet.transfer --seed N --out "
              "results/tascnet/seeds/seedN first", file=sys.stderr)
        return 2
    summary, claims, md = summarise(runs)
    (OUT / "seeds.json").write_text(json.dumps(stamp(
        {"seeds": sorted(runs), "summary": summary}, derived_from="results/tascnet/[seeds/seed*/]transfer.json",
        runs_predate_provenance=any("provenance" not in r for r in runs.values())), indent=2))
    md += ["| claim | setting | ours | baseline | holds |", "|---|---|---|---|---|"]
    md += [f"| {c['claim']} | {c['setting']} | {c['ours']} | {c['baseline']} | {'yes' if c['holds'] else 'NO'} |"
           for c in claims]
    (OUT / "seeds.md").write_text("\n".join(md) + "\n")
    from benchmarks.tascnet import verdicts

    verdicts.update()
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
