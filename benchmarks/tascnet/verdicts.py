"""TASCNet's verdicts (registered rules ``tascnet.*``), derived from the stored per-seed transfer.json files
(seed 0: results/tascnet/transfer.json; seed N: results/tascnet/seeds/seed<N>/transfer.json). Each claim uses
the seeds its registry entry names; a registered seed without a stored run leaves the claim without a verdict."""

from __future__ import annotations

import json

from natkit.report import stats
from natkit.report.claims import load_registry

from benchmarks.verdicts import ROOT, pvals, update as _update, verdict

NETS = ("vgg_small", "resnet_small")
MAC_TOLERANCE = 0.01


def sources() -> list[str]:
    found = ["results/tascnet/transfer.json"]
    found += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results/tascnet/seeds").glob("seed*/transfer.json"))
    return found


def _runs() -> dict:
    runs = {}
    for rel in sources():
        p = ROOT / rel
        if p.is_file():
            d = json.loads(p.read_text())
            runs[int(d["setting"]["seed"])] = (rel, d)
    return runs


def _registered(runs: dict, claim_id: str, registry: dict) -> list[int]:
    """The registered seeds with a stored run (``judge`` gives no verdict when one is missing)."""
    return [s for s in registry[claim_id]["seeds"] if s in runs]


def derive() -> list:
    runs = _runs()
    if not runs:
        return []
    reg = load_registry()
    out = []
    for net in NETS:
        out += _transfer(runs, net, reg)
        out += _width(runs, net, reg)
        out += _l1(runs, net, reg)
    return out


def _transfer(runs, net, reg) -> list:
    out = []
    for cid, idx, name in (("tascnet.transfer.vs_deeper", 0, "deeper layers"),
                           ("tascnet.transfer.vs_all_layers", 1, "all layers")):
        seeds = _registered(runs, cid, reg)
        per = [runs[s][1]["nets"][net] for s in seeds if net in runs[s][1]["nets"]]
        if not per or len(per) != len(seeds):
            continue
        src = ", ".join(runs[s][0] for s in seeds)
        ours = [100 * r["picked"]["test_acc"] for r in per]
        pcut = min(1 - r["picked"]["params"] / r["conventional"][0]["params"] for r in per)
        mcut = min(1 - r["picked"]["macs"] / r["conventional"][0]["macs"] for r in per)
        base = [100 * r["conventional"][idx]["test_acc"] for r in per]
        p = stats.paired(ours, base)
        wall = [r["search_seconds"] / max(r["conventional"][idx]["seconds"], 1e-9) for r in per]
        out.append(verdict(
            cid, {**pvals(p), "params_cut_min": pcut, "macs_cut_min": mcut}, key=net, source=src,
            data=runs[seeds[0]][1], n=p.n,
            effect="accuracy " + p.fmt() + f"; params -{100 * pcut:.0f}%, MACs -{100 * mcut:.0f}% or more",
            ours=f"TASCNet val-selected member test acc {stats.summarize(ours).fmt(unit='%')}",
            baseline=f"{name} fine-tuned {per[0]['conventional'][idx]['epochs']:g} epochs: test acc "
                     f"{stats.summarize(base).fmt(unit='%')}",
            setting=f"{net}, fashion-mnist -> digits, seeds {seeds}",
            compute={"method": {"search_seconds_mean": stats.summarize([r['search_seconds'] for r in per]).mean},
                     "baselines": {name: {"epochs": per[0]["conventional"][idx]["epochs"],
                                          "seconds_mean": stats.summarize(
                                              [r["conventional"][idx]["seconds"] for r in per]).mean,
                                          "method_wall_time_ratio": stats.summarize(wall).mean}}},
            plot=f"results/tascnet/transfer_{net}.png", seeds=seeds))
    return out


def _width(runs, net, reg) -> list:
    cid = "tascnet.vs_width_same_wall_time"
    seeds = _registered(runs, cid, reg)
    have = [s for s in seeds if (runs[s][1]["nets"].get(net) or {}).get("width_same_time")]
    src = ", ".join(runs[s][0] for s in have) or "results/tascnet/transfer.json"
    data = runs[have[0]][1] if have else runs[min(runs)][1]
    if not have:
        res = verdict(cid, {}, key=net, source=src, data=data, n=0,
                      effect="not run: no stored run has a width search given TASCNet's wall time")
        res.holds = None
        return [res]
    per = {s: runs[s][1]["nets"][net] for s in have}
    paired = [s for s in have if (per[s]["width_same_time"].get("member") or {}).get("test_acc") is not None]
    absent = [s for s in have if s not in paired]
    ours = [100 * per[s]["picked"]["test_acc"] for s in paired]
    theirs = [100 * per[s]["width_same_time"]["member"]["test_acc"] for s in paired]
    p = stats.paired(ours, theirs) if paired else None
    w = [per[s]["width_same_time"] for s in have]
    res = verdict(
        cid, {**(pvals(p) if p else {}), "width_missing": len(absent)}, key=net, source=src, data=data,
        n=p.n if p else 0,
        effect=("accuracy " + p.fmt() if p else "no pair") +
               (f"; width had no network at <= the member's MACs + 1% in seeds {absent}" if absent else ""),
        ours=f"TASCNet val-selected member test acc {stats.summarize(ours).fmt(unit='%')}" if ours else "",
        baseline=(f"width's val-selected network at <= the member's MACs + 1%: test acc "
                  f"{stats.summarize(theirs).fmt(unit='%')}") if theirs else "",
        setting=f"{net}, digits, seeds {have}; width time_limit = TASCNet's search wall time",
        compute={"method": {"search_seconds_mean": stats.summarize([per[s]["search_seconds"] for s in have]).mean},
                 "baselines": {"width same wall time": {
                     "seconds_mean": stats.summarize([x["search_seconds"] for x in w]).mean,
                     "overrun_max": max(x["overrun"] for x in w),
                     "real_evaluations_mean": stats.summarize([x["real_evaluations"] for x in w]).mean,
                     "epochs_per_candidate": w[0]["options"].get("epochs")}}},
        plot=f"results/tascnet/transfer_{net}.png", seeds=have)
    return [res]


def _l1(runs, net, reg) -> list:
    cid = "tascnet.stage2_vs_l1"
    seeds = _registered(runs, cid, reg)
    rows = [q for s in seeds for q in (runs[s][1]["nets"].get(net) or {}).get("stage2_vs_l1") or []]
    pairs = [q for q in rows if "l1_test_acc" in q]
    if not pairs:
        return []
    src = ", ".join(runs[s][0] for s in seeds)
    unmatched = sum("unmatched" in q for q in rows)
    gaps = [abs(q["l1_macs"] / q["ours_macs"] - 1) for q in pairs]
    p = stats.paired([100 * q["ours_test_acc"] for q in pairs], [100 * q["l1_test_acc"] for q in pairs])
    matched = max(gaps) <= MAC_TOLERANCE
    values = {"macs_gap_max": max(gaps), "n_unmatched": unmatched}
    if matched:
        values.update(pvals(p))
    # unmatched MACs: the rule's comparison does not exist in the data; no verdict (not a failure)
    effect = ("accuracy " + p.fmt() if matched else
              f"cannot answer: L1 MACs differ by {100 * min(gaps):.1f}-{100 * max(gaps):.1f}% (> 1%); "
              f"unmatched difference {p.fmt()}")
    if unmatched:
        effect += f"; {unmatched} member(s) L1 could not match within 1% were not compared"
    res = verdict(cid, values, key=net, source=src, data=runs[seeds[0]][1], n=p.n, effect=effect,
                  setting=f"{net}, {len(pairs)} stage-2 members over seeds {seeds}",
                  plot=f"results/tascnet/stage2_vs_l1_{net}.png", seeds=seeds)
    if not matched:
        res.holds = None
    return [res]


def update():
    return _update("tascnet", derive())
