"""LDA's verdicts (registered ``lda.*``), from the stored per-seed files results/lda[/fashion-mnist]/seeds/."""

from __future__ import annotations

import json

from natkit.report import stats

from benchmarks.lda import report as REP
from benchmarks.verdicts import ROOT, update as _update, verdict

TASKS = {"digits": "results/lda", "fashion-mnist": "results/lda/fashion-mnist"}
MODES = {"widths": "lda.ahead.widths", "uniform": "lda.ahead.uniform", "global": "lda.ahead.global"}


def _seeds(d: str) -> list:
    return sorted((json.loads(p.read_text()) for p in (ROOT / d / "seeds").glob("seed*.json")), key=lambda r: r["seed"])


def derive() -> list:
    out = []
    for task, d in TASKS.items():
        results = _seeds(d)
        if not results:
            continue
        src = f"{d}/seeds/seed*.json"
        first = results[0]
        seeds = [r["seed"] for r in results]
        # 1. the paper's headline: >= 90% removed with <= 1 point loss, at the schedule's (val-chosen) result
        removed, loss = [], []
        for r in results:
            t = next((t for t in r["schedule"] if t["round"] == r["result_round"]), None)
            # no round within the val tolerance: the schedule's result is the unpruned network (nothing
            # removed, no loss), counted as such on both parts of the rule
            removed.append(t["params_removed"] if t else 0.0)
            loss.append(100 * (r["base_test_acc"] - t["test_acc"]) if t else 0.0)
        ls = stats.paired_diffs(loss)
        out.append(verdict("lda.compression.target", {"removed_mean": stats.summarize(removed).mean,
                                                      "loss_ci_high": ls.hi}, key=task, source=src, data=first,
                           n=len(results), effect=f"{100 * stats.summarize(removed).mean:.1f}% removed on average "
                           f"(min {100 * min(removed):.1f}%), loss {ls.fmt()}",
                           setting=f"vgg_small, Fashion-MNIST -> {task}, seeds {seeds}",
                           plot=f"{d}/compression.png"))
        # 2. ahead of Torch-Pruning importances at every level >= 90% removed, per baseline mode
        summary = REP.summarise(results)
        deep = [n for n in summary if REP.aggressive(summary, n)]
        for mode, cid in MODES.items():
            keys = [f"{b}_{mode}" for b in REP.BASELINES]
            if not deep or any(k not in summary[deep[0]] for k in keys):
                continue
            cells = {(n, k): stats.paired_diffs(summary[n][k]["paired"]["per_seed"]) for n in deep for k in keys}
            worst = min(cells.values(), key=lambda p: p.lo)
            out.append(verdict(
                cid, {"ci_low_min": worst.lo, "n": worst.n}, key=task, source=src, data=first, n=worst.n,
                effect="; ".join(f"{n} vs {REP.NAMES[k.split('_')[0]]} {p.fmt()}" for (n, k), p in cells.items()),
                setting=f"Fashion-MNIST -> {task}, {REP.MODE_TEXT[mode]}; levels {deep}; seeds {seeds}",
                compute={"method": {"epochs": "LDA schedule"}, "baselines": {mode: {"epochs": "LDA's calls replayed"}}},
                plot=f"{d}/compression.png"))
        # 3. robustness: pruned minus unpruned accuracy per attack setting
        acc = {}
        for r in results:
            role = dict(zip(r["robust_models"], ("unpruned", "lda", "l1")))
            for row in r["robustness"]:
                if row["strength"] > 0:
                    acc.setdefault((row["attack"], row["strength"]), {}).setdefault(role[row["model"]], []).append(
                        100 * row["accuracy"])
        cells = {k: stats.paired(v["lda"], v["unpruned"]) for k, v in sorted(acc.items())}
        worst = min(cells.values(), key=lambda p: p.lo)
        out.append(verdict("lda.robustness", {"ci_low_min": worst.lo, "n": worst.n}, key=task, source=src,
                           data=first, n=worst.n,
                           effect="; ".join(f"{a} {s:g}: {p.fmt()}" for (a, s), p in cells.items()),
                           setting=f"Fashion-MNIST -> {task}, pruned = LDA's result, seeds {seeds}",
                           plot=f"{d}/robustness.png"))
    return out


def update():
    return _update("lda", derive())
