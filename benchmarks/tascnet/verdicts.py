"""TASCNet's verdicts (registered rules ``tascnet.*``), derived from the stored per-seed transfer.json files."""

from __future__ import annotations

import json

from natkit.report import stats

from benchmarks.verdicts import ROOT, pvals, update as _update, verdict

SOURCES = ["results/tascnet/transfer.json", "results/tascnet/seeds/seed1/transfer.json",
           "results/tascnet/seeds/seed2/transfer.json"]
NETS = ("vgg_small", "resnet_small")
MAC_TOLERANCE = 0.01


def _runs() -> dict:
    runs = {}
    for rel in SOURCES:
        p = ROOT / rel
        if p.is_file():
            d = json.loads(p.read_text())
            runs[int(d["setting"]["seed"])] = (rel, d)
    return runs


def derive() -> list:
    runs = _runs()
    if not runs:
        return []
    seeds = sorted(runs)
    src = ", ".join(runs[s][0] for s in seeds)
    first = runs[seeds[0]][1]
    out = []
    for net in NETS:
        per = [runs[s][1]["nets"][net] for s in seeds if net in runs[s][1]["nets"]]
        if len(per) != len(seeds):
            continue
        ours = [100 * r["picked"]["test_acc"] for r in per]
        pcut = min(1 - r["picked"]["params"] / r["conventional"][0]["params"] for r in per)
        mcut = min(1 - r["picked"]["macs"] / r["conventional"][0]["macs"] for r in per)
        for cid, idx, name in (("tascnet.transfer.vs_deeper", 0, "deeper layers"),
                               ("tascnet.transfer.vs_all_layers", 1, "all layers")):
            base = [100 * r["conventional"][idx]["test_acc"] for r in per]
            p = stats.paired(ours, base)
            wall = [r["search_seconds"] / max(r["conventional"][idx]["seconds"], 1e-9) for r in per]
            out.append(verdict(
                cid, {**pvals(p), "params_cut_min": pcut, "macs_cut_min": mcut}, key=net, source=src, data=first,
                n=p.n, effect="accuracy " + p.fmt() + f"; params -{100 * pcut:.0f}%, MACs -{100 * mcut:.0f}% or more",
                ours=f"TASCNet val-selected member test acc {stats.summarize(ours).fmt(unit='%')}",
                baseline=f"{name} fine-tuned {per[0]['conventional'][idx]['epochs']:g} epochs: test acc "
                         f"{stats.summarize(base).fmt(unit='%')}",
                setting=f"{net}, fashion-mnist -> digits, seeds {seeds}",
                compute={"method": {"search_seconds_mean": stats.summarize([r['search_seconds'] for r in per]).mean},
                         "baselines": {name: {"epochs": per[0]["conventional"][idx]["epochs"],
                                              "seconds_mean": stats.summarize(
                                                  [r["conventional"][idx]["seconds"] for r in per]).mean,
                                              "method_wall_time_ratio": stats.summarize(wall).mean}}},
                plot=f"results/tascnet/transfer_{net}.png"))
        out.append(verdict("tascnet.vs_width_same_wall_time", {}, key=net, source=src, data=first, n=0,
                           effect="not run: no width search was given TASCNet's wall time"))
        pairs = [q for r in per for q in r.get("stage2_vs_l1") or [] if "l1_test_acc" in q]
        if pairs:
            gaps = [abs(q["l1_macs"] / q["ours_macs"] - 1) for q in pairs]
            p = stats.paired([100 * q["ours_test_acc"] for q in pairs], [100 * q["l1_test_acc"] for q in pairs])
            matched = max(gaps) <= MAC_TOLERANCE
            values = {**pvals(p), "macs_gap_max": max(gaps)} if matched else {"macs_gap_max": max(gaps)}
            # unmatched MACs: the rule's comparison does not exist in the data; no verdict (not a failure)
            effect = ("accuracy " + p.fmt() if matched else
                      f"cannot answer: L1 MACs differ by {100 * min(gaps):.1f}-{100 * max(gaps):.1f}% (> 1%); "
                      f"unmatched difference {p.fmt()}")
            res = verdict("tascnet.stage2_vs_l1", values, key=net, source=src, data=first, n=p.n, effect=effect,
                          setting=f"{net}, {len(pairs)} stage-2 members over seeds {seeds}",
                          plot=f"results/tascnet/stage2_vs_l1_{net}.png")
            if not matched:
                res.holds = None
            out.append(res)
    return out


def update():
    return _update("tascnet", derive())
