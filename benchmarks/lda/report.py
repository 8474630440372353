"""Aggregate the per-seed results of ``python -m benchmarks.lda.compression`` into tables, markdown and plots.

Paired statistics: for every seed the LDA network and each baseline start from the same unpruned
network and are tested on the same test split, so the difference LDA - baseline is taken per seed
and then averaged (mean, sd with ddof=1, 95 % t-interval, seeds won / tied / lost; natkit.report.stats).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from natkit.report import stats
from natkit.report.provenance import provenance

BASELINES = ("l1", "taylor", "random")
MODE_TEXT = {"widths": "same per-layer widths as LDA (identical params and MACs)",
             "uniform": "Torch-Pruning MagnitudePruner, one uniform ratio, params nearest to LDA's",
             "global": "Torch-Pruning MagnitudePruner with global_pruning (its own per-layer widths, LDA's width "
                       "floor), params nearest to LDA's"}
ALL_MODES = tuple(MODE_TEXT)
MODE_LABEL = {"widths": "same widths", "uniform": "uniform ratio", "global": "global ranking"}
NAMES = {"l1": "L1", "taylor": "Taylor", "random": "random"}


def paired(diffs) -> dict:
    """Mean, sd, 95 % t-interval and win/tie/loss of per-seed differences LDA minus baseline (points),
    by natkit.report.stats (ddof=1)."""
    p = stats.paired_diffs(diffs)
    return {"n": p.n, "mean": p.mean, "std": p.sd, "ci95": [p.lo, p.hi], "wins": p.above, "ties": p.equal,
            "losses": p.below, "per_seed": [round(float(x), 4) for x in diffs]}


def summarise(results) -> dict:
    """Per level: removal, LDA and baseline accuracy (mean, std) and paired differences, in points."""
    level_names = list(dict.fromkeys(c["level"] for r in results for c in r["comparisons"]))
    keys = [k for k in results[0]["comparisons"][0] if isinstance(results[0]["comparisons"][0][k], dict)]
    lacking = [(r["seed"], k) for r in results for c in r["comparisons"] for k in keys if k not in c]
    if lacking:  # e.g. a mode added to some seed files only (benchmarks.lda.compression --add-modes)
        raise SystemExit(f"seed {lacking[0][0]} has no {lacking[0][1]!r} baseline; add it to every seed first")
    out = {}
    for name in level_names:
        rows = [(r["seed"], c) for r in results for c in r["comparisons"] if c["level"] == name]
        lda = np.array([100 * c["lda_test_acc"] for _, c in rows])
        s = {"seeds": [sd for sd, _ in rows],
             "removed": [float(c["params_removed"]) for _, c in rows],
             "lda": {"mean": float(lda.mean()), "std": stats.sd(lda),
                     "per_seed": lda.round(2).tolist()}}
        for k in keys:
            b = np.array([100 * c[k]["test_acc"] for _, c in rows])
            s[k] = {"mean": float(b.mean()), "std": stats.sd(b),
                    "param_gap": [int(c[k]["params"] - c["lda_params"]) for _, c in rows],
                    "paired": paired(lda - b)}
        out[name] = s
    return out


def target_of(results) -> str:
    """The benchmark's target task ("digits" unless run with --task)."""
    return str(results[0].get("args", {}).get("task") or "digits")


def label_of(results) -> str:
    t = target_of(results)
    if t == "digits":
        return "Fashion-MNIST -> digits"
    n = results[0].get("n_train")
    return f"Fashion-MNIST -> {t} ({n} train images)" if n else f"Fashion-MNIST -> {t}"


def aggressive(summary, name) -> bool:
    return min(summary[name]["removed"]) >= 0.9


def write_report(results, out: Path, *, root: Path, seconds: float, started: float | None = None) -> dict:
    """compression.json/.md/.png and robustness.* in ``out``; the verdicts (registered rules ``lda.*``) are
    derived from these files by ``benchmarks.lda.verdicts`` into results/lda/claims.json."""
    out = Path(out)
    summary = summarise(results)
    seeds = [r["seed"] for r in results]
    rel = lambda p: (str(Path(p).resolve().relative_to(root)) if Path(p).resolve().is_relative_to(root)  # noqa: E731
                     else str(p))
    plot = out / "compression.png"
    _plot(summary, plot, label_of(results))
    rob = _robustness(results, out, started)
    claims = [_claim_compression(results, rel(plot)), *_claims_ahead(summary, results, rel(plot)),
              _claim_robust(results, rob, rel(out / "robustness.png"))]
    seed_text = (f"; seeds {', '.join(map(str, seeds))} (each seed: its own {target_of(results)} split, source pretraining "
                 "and fine-tuning order)")
    for c in claims:
        c["setting"] += seed_text
    doc = {"claims": claims, "source": "benchmarks.lda.compression", "seconds": seconds}
    (out / "compression.json").write_text(json.dumps({"summary": summary, "seeds": seeds, "claims": claims,
                                                      "per_seed": [{k: r[k] for k in ("seed", "base_test_acc",
                                                                                      "n_test", "levels", "comparisons",
                                                                                      "seconds")} for r in results],
                                                      "config": results[0]["config"], "args": results[0]["args"],
                                                      "provenance": _derived(results, started)},
                                                     indent=2, default=str))
    (out / "compression.md").write_text(_markdown(results, summary, claims, seconds, rob["rows"]))
    for c in claims:
        print(f"{'HOLDS' if c['holds'] else 'FAILS'}: {c['claim']}\n  ours: {c['ours']}\n  baseline: {c['baseline']}",
              flush=True)
    return doc


def _derived(results, started) -> dict:
    """Provenance of a file rebuilt from the seed files: this process, and whether any seed predates provenance."""
    return {**provenance(started), "derived_from": "seeds/seed*.json",
            "runs_predate_provenance": any("provenance" not in r for r in results)}


def _noise(results) -> str:
    n = [r["n_test"] for r in results]
    acc = np.mean([r["base_test_acc"] for r in results])
    se = 100 * np.sqrt(acc * (1 - acc) / np.mean(n))
    return (f"test split {min(n)}-{max(n)} images per seed: one image = {100 / np.mean(n):.2f} points; binomial "
            f"standard error of one accuracy at {100 * acc:.1f}% = {se:.2f} points")


def _claim_compression(results, plot) -> dict:
    per = []
    for r in results:
        t = next((t for t in r["schedule"] if t["round"] == r["result_round"]), None)
        if t is None:
            per.append((r["seed"], None, None, r["base_test_acc"]))
        else:
            per.append((r["seed"], t["params_removed"], r["base_test_acc"] - t["test_acc"], r["base_test_acc"]))
    ok = [p is not None and p >= 0.9 and loss <= 0.01 + 1e-12 for _, p, loss, _ in per]
    cfg = results[0]["config"]
    done = [(p, loss) for _, p, loss, _ in per if p is not None]
    return {"claim": ">= 90% of parameters removed with <= 1 point test accuracy loss (VGG on a new task)",
            "setting": f"vgg_small pretrained on Fashion-MNIST ({cfg['source_samples_per_class']}/class, "
                       f"{cfg['source_epochs']:g} epochs), target {target_of(results)} at {cfg['resolution']} px; the LDA "
                       "schedule's "
                       f"result: its last round with val accuracy within {cfg['tolerance']:.0%} of the unpruned network "
                       f"(eta {cfg['eta_start']:g} + {cfg['eta_step']:g} per round, {cfg['finetune_epochs']:g} epochs each)",
            "ours": " || ".join(f"seed {s}: " + (f"{100 * p:.1f}% removed, loss {100 * loss:.2f} points" if p is not None
                                                 else "no accepted round") for s, p, loss, _ in per)
                    + (f"; mean {100 * np.mean([p for p, _ in done]):.1f}% removed, "
                       f"{100 * np.mean([x for _, x in done]):.2f} points" if done else ""),
            "baseline": "unpruned test acc " + ", ".join(f"{100 * b:.2f}%" for *_, b in per),
            "holds": bool(all(ok)), "plot": plot, "holds_per_seed": {str(s): o for (s, *_), o in zip(per, ok)},
            "note": _noise(results)}


def _claims_ahead(summary, results, plot) -> list:
    modes = [m for m in ALL_MODES if f"l1_{m}" in next(iter(summary.values()))]
    deep = [n for n in summary if aggressive(summary, n)]
    claims = []
    for mode in modes:
        cells = {(n, b): summary[n][f"{b}_{mode}"]["paired"] for n in deep for b in BASELINES}
        holds = bool(deep) and all(c["mean"] > 0 for c in cells.values())
        above = [f"{n} vs {NAMES[b]}" for (n, b), c in cells.items() if c["ci95"][0] > 0]
        below = [f"{n} vs {NAMES[b]}" for (n, b), c in cells.items() if c["ci95"][1] < 0]
        lvl = lambda n: f"{n} ({100 * np.mean(summary[n]['removed']):.1f}% removed)"  # noqa: E731
        claims.append({
            "claim": "LDA pruning ahead of L1, Taylor and random pruning at aggressive compression (>= 90% removed)"
                     + f" [{MODE_LABEL[mode]}]",
            "setting": f"{label_of(results)}; paired per seed: same transferred network, {MODE_TEXT[mode]}, pruned "
                       "round by round on "
                       "LDA's schedule with LDA's fine-tuning calls replayed (same epochs, seeds, optimiser); "
                       "holds = mean paired test-accuracy difference > 0 against each baseline at each level >= 90%",
            "ours": "; ".join(f"{lvl(n)}: LDA {summary[n]['lda']['mean']:.2f} ± {summary[n]['lda']['std']:.2f}%"
                              for n in deep),
            "baseline": "; ".join(f"{n}: " + ", ".join(
                f"{NAMES[b]} {summary[n][f'{b}_{mode}']['mean']:.2f}% (LDA - {NAMES[b]} "
                f"{cells[(n, b)]['mean']:+.2f} ± {cells[(n, b)]['std']:.2f} pts, 95% CI "
                f"[{cells[(n, b)]['ci95'][0]:+.2f}, {cells[(n, b)]['ci95'][1]:+.2f}], LDA won {cells[(n, b)]['wins']}"
                f"/tied {cells[(n, b)]['ties']}/lost {cells[(n, b)]['losses']} seeds)" for b in BASELINES)
                for n in deep),
            "holds": holds, "plot": plot,
            "note": significance(above, below) + "; " + _noise(results)})
    return claims


def significance(above: list, below: list) -> str:
    """Which paired 95% intervals exclude 0, on either side."""
    parts = ([f"95% interval above 0 (LDA ahead) for: {', '.join(above)}"] if above else []) + (
        [f"95% interval below 0 (LDA behind) for: {', '.join(below)}"] if below else [])
    return "; ".join(parts) or "no paired 95% interval excludes 0"


def _robustness(results, out, started=None) -> dict:
    """Accuracy under noise / FGSM averaged over seeds, models renamed by role: robustness.json (the rows and
    the provenance of this rebuild), robustness.md and robustness.png."""
    from natkit.methods.lda import robust as lda_robust

    roles = ["unpruned", "LDA-pruned (result)", "L1-pruned (same widths)"]
    acc = {}
    for r in results:
        rename = dict(zip(r["robust_models"], roles))
        for row in r["robustness"]:
            acc.setdefault((rename[row["model"]], row["attack"], row["strength"]), []).append(row["accuracy"])
    rows = [{"model": m, "attack": a, "strength": s, "accuracy": float(np.mean(v)), "per_seed": v}
            for (m, a, s), v in acc.items()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps({"rows": rows, "provenance": _derived(results, started)},
                                                    indent=2, default=str))
    (out / "robustness.md").write_text(lda_robust.table_markdown(rows) + "\n")
    lda_robust.plot_robustness(rows, out / "robustness.png")
    return {"rows": rows, "acc": acc}


def _claim_robust(results, rob, plot) -> dict:
    acc = rob["acc"]
    strong = sorted({(a, s) for (m, a, s) in acc if m == "unpruned" and s > 0})
    mean = {k: 100 * float(np.mean(v)) for k, v in acc.items()}
    lda, un = "LDA-pruned (result)", "unpruned"
    wins = sum(mean[(lda, a, s)] >= mean[(un, a, s)] for a, s in strong)
    seed_wins = sum(int(x >= y) for a, s in strong for x, y in zip(acc[(lda, a, s)], acc[(un, a, s)]))
    l1 = "L1-pruned (same widths)"
    return {"claim": "pruned network at least as robust to noise and FGSM as the unpruned one",
            "setting": f"{label_of(results)}, test split; Gaussian noise sigma and FGSM epsilon on [0,1] pixels; "
                       "mean over seeds",
            "ours": "; ".join(f"{a} {s:g}: {mean[(lda, a, s)]:.2f}%" for a, s in strong),
            "baseline": "; ".join(f"{a} {s:g}: {mean[(un, a, s)]:.2f}%" for a, s in strong),
            "holds": bool(wins == len(strong)), "plot": plot,
            "note": f"mean pruned >= mean unpruned at {wins} of {len(strong)} settings; per seed and setting "
                    f"{seed_wins} of {len(strong) * len(results)}" + (
                        "; for context, L1 at LDA's widths: " + "; ".join(f"{a} {s:g}: {mean[(l1, a, s)]:.2f}%"
                                                                         for a, s in strong)
                        if (l1, *strong[0]) in mean else "")}


def _plot(summary, path, label="Fashion-MNIST -> digits"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    modes = [m for m in ALL_MODES if f"l1_{m}" in summary[names[0]]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    x = [100 * np.mean(summary[n]["removed"]) for n in names]
    ax.errorbar(x, [summary[n]["lda"]["mean"] for n in names], yerr=[summary[n]["lda"]["std"] for n in names],
                fmt="-o", color="C0", capsize=3, label="LDA")
    for k, b in enumerate(BASELINES):
        for mode, style in zip(modes, ("s--", "^:", "v-.")):
            key = f"{b}_{mode}"
            ax.errorbar([xi + 0.3 * (k + 1) for xi in x], [summary[n][key]["mean"] for n in names],
                        yerr=[summary[n][key]["std"] for n in names], fmt=style, color=f"C{k + 1}", capsize=2,
                        alpha=0.8, label=f"{NAMES[b]} ({mode})")
    ax.set_xlabel("parameters removed (%, mean over seeds)")
    ax.set_ylabel("test accuracy (%), mean ± std")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    pos = np.arange(len(names))
    width = 0.8 / (len(BASELINES) * len(modes))
    j = 0
    for mode in modes:
        for k, b in enumerate(BASELINES):
            p = [summary[n][f"{b}_{mode}"]["paired"] for n in names]
            off = pos - 0.4 + width * (j + 0.5)
            ax.bar(off, [c["mean"] for c in p], width, color=f"C{k + 1}",
                   alpha={"widths": 0.9, "uniform": 0.45}.get(mode, 0.25), hatch="//" if mode == "global" else None,
                   yerr=[[c["mean"] - c["ci95"][0] for c in p], [c["ci95"][1] - c["mean"] for c in p]], capsize=2,
                   label=f"LDA - {NAMES[b]} ({mode})")
            for xi, c in zip(off, p):
                ax.plot([xi] * len(c["per_seed"]), c["per_seed"], ".", color="k", ms=3)
            j += 1
    ax.axhline(0, color="k", lw=1)
    ax.set_xticks(pos, [f"{n}\n{100 * np.mean(summary[n]['removed']):.0f}%" for n in names], fontsize=8)
    ax.set_ylabel("paired difference (points), mean, 95% CI, seeds")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.suptitle(f"vgg_small {label}: LDA vs Torch-Pruning at LDA's sizes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(results, summary, claims, seconds, rob_rows) -> str:
    from natkit.methods.lda import robust as lda_robust

    r0 = results[0]
    lines = [f"# Deep LDA pruning: vgg_small, {label_of(results)}", "",
             f"Seeds {', '.join(str(r['seed']) for r in results)}; unpruned {r0['base_cost']['params']} params, "
             f"{r0['base_cost']['macs']} MACs; unpruned test acc " + ", ".join(
                 f"{100 * r['base_test_acc']:.2f}%" for r in results) + f". Run time {seconds:.0f} s summed over seeds, 1 thread each.",
             "", f"Noise: {_noise(results)}.", "",
             "## Same sizes: LDA vs Torch-Pruning (test accuracy %, mean ± std over seeds; paired LDA - baseline "
             "in points, mean [95% CI], won/tied/lost)", ""]
    keys = [k for k in summary[next(iter(summary))] if "_" in k]
    lines += ["| level | removed | LDA | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for n, s in summary.items():
        cells = [f"{s[k]['mean']:.2f} ± {s[k]['std']:.2f}<br>{s[k]['paired']['mean']:+.2f} "
                 f"[{s[k]['paired']['ci95'][0]:+.2f}, {s[k]['paired']['ci95'][1]:+.2f}] "
                 f"{s[k]['paired']['wins']}/{s[k]['paired']['ties']}/{s[k]['paired']['losses']}" for k in keys]
        lines.append(f"| {n} | {100 * np.mean(s['removed']):.1f}% ({100 * min(s['removed']):.1f}-"
                     f"{100 * max(s['removed']):.1f}) | {s['lda']['mean']:.2f} ± {s['lda']['std']:.2f} | "
                     + " | ".join(cells) + " |")
    # one uniform ratio gives every importance the same widths; global ranking's widths depend on the importance
    for mode, imps in (("uniform", ("l1",)), ("global", BASELINES)):
        for imp in imps:
            if f"{imp}_{mode}" in summary[next(iter(summary))]:
                lines += ["", f"Parameter gap baseline - LDA, {NAMES[imp]} {mode} mode (same-widths mode is 0 by "
                          "construction): " + "; ".join(f"{n}: {s[f'{imp}_{mode}']['param_gap']}"
                                                        for n, s in summary.items())]
    lines.append("")
    for r in results:
        lines += [f"## Seed {r['seed']}: LDA schedule", "",
                  "| round | eta | M' | params | removed | MACs | val acc | test acc | accepted | widths |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for t in r["schedule"]:
            lines.append(f"| {t['round']} | {t['eta']:.2f} | {t['m_prime']} | {t['params']} | "
                         f"{t['params_removed']:.1%} | {t['macs']} | {t['val_acc']:.2%} | {t['test_acc']:.2%} | "
                         f"{'yes' if t['accepted'] else 'no'} | {list(t['widths'].values())} |")
        lines.append("")
    lines += ["## Robustness (test accuracy, mean over seeds)", "", lda_robust.table_markdown(rob_rows), "",
              "## Claims", ""]
    for c in claims:
        lines.append(f"- **{'holds' if c['holds'] else 'does not hold'}**: {c['claim']} — ours: {c['ours']}; "
                     f"baseline: {c['baseline']}" + (f" ({c['note']})" if c.get("note") else ""))
    return "\n".join(lines) + "\n"
