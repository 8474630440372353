"""Plots and results.md of ``python -m benchmarks.progressive.benchmark`` (read from its stored JSON); the
verdicts under the registered rules go to results/progressive/claims.json via benchmarks.progressive.verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from natkit.report import stats

LABELS = {"progressive": "progressive (ours)", "global_retrain": "(a) whole-model retrain per action",
          "one_shot": "(b) one-shot + full retrain", "tp_l1": "(c) Torch-Pruning L1 + full retrain"}
ORDER = list(LABELS)


def _pct(x):
    return f"{100 * x:.2f}%"


def _ms(vals):
    s = stats.summarize(vals)
    return s.mean, (s.sd if s.n > 1 else 0.0)


def _fmt(vals):
    m, s = _ms(vals)
    return f"{_pct(m)} ± {_pct(s)}"


def paired(a: dict, b: dict) -> dict:
    """Paired difference a - b (method minus baseline, natkit.report.stats) over the keys both have (seeds, or
    (share, seed)): mean, sd (ddof=1), standard error, 95% t interval. For errors a negative difference favours
    a; ``wins`` counts units where a's error is lower."""
    keys = sorted(set(a) & set(b))
    p = stats.paired([a[k] for k in keys], [b[k] for k in keys])
    se = p.sd / math.sqrt(p.n) if p.n > 1 else float("nan")
    return {"mean": p.mean, "std": p.sd, "se": se, "n": p.n, "ci95": [p.lo, p.hi],
            "wins": p.below, "ties": p.equal, "losses": p.above}


def _select(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def where(st) -> str:
    """Short label of the benchmark's setting: transfer to digits, or the source task itself (a subset)."""
    if st.get("target", "digits") == st.get("source", "fashion-mnist"):
        return f"vgg_small on {st['target']} ({st.get('n_train', '?')} train images)"
    return f"vgg_small {st.get('source', 'fashion-mnist')} -> {st.get('target', 'digits')}"


def _base_text(st) -> str:
    if st.get("target", "digits") == st.get("source", "fashion-mnist"):
        return (f"vgg_small pretrained on the whole Fashion-MNIST training split ({st['source_epochs']:g} epochs), "
                f"then trained on a {st.get('n_train', '?')}-image subset of it")
    return "vgg_small pretrained on Fashion-MNIST, fine-tuned on digits"


def plot_criteria(rows, base_m, path):
    """Validation (selection) and test error of progressive retraining per criterion, mean ± sd, ddof=1 over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crits = sorted({r["criterion"] for r in rows})
    shares = sorted({r["share"] for r in rows})
    bars = [(sh, split) for sh in shares for split in ("val", "test")]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    w = 0.8 / len(bars)
    for j, (sh, split) in enumerate(bars):
        ms = [_ms([r[f"{split}_error"] for r in _select(rows, criterion=c, share=sh)]) for c in crits]
        macs = _select(rows, share=sh)[0]["macs"]
        ax.bar(np.arange(len(crits)) + j * w, [100 * m for m, _ in ms], w, yerr=[100 * s for _, s in ms],
               hatch="" if split == "val" else "//", label=f"{split} error, share {sh} ({macs:,} MACs)")
    ax.axhline(100 * base_m["val_error"], color="k", ls="--", lw=1, label="unpruned, val")
    ax.axhline(100 * base_m["test_error"], color="k", ls=":", lw=1, label="unpruned, test")
    ax.set_xticks(np.arange(len(crits)) + w * (len(bars) - 1) / 2)
    ax.set_xticklabels(crits)
    ax.set_ylabel("error (%)")
    ax.set_title("progressive retraining on digits: relevance criteria (mean ± sd, ddof=1 over seeds)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_compare(out: Path, base_m):
    """Test error against MACs per method (mean ± sd, ddof=1 over seeds; identical widths, shifted for legibility)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = json.loads((out / "compare.json").read_text())
    st = comp["setting"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, meth in enumerate(ORDER):
        pts = []
        for sh in st["shares"]:
            rs = _select(comp["runs"], method=meth, share=sh)
            if rs:
                pts.append((rs[0]["macs"], *_ms([r["test_error"] for r in rs])))
        pts.sort()
        ax.errorbar([p[0] / 1e6 * (1 + (i - 1.5) * 0.01) for p in pts], [100 * p[1] for p in pts],
                    yerr=[100 * p[2] for p in pts], marker="os^D"[i], capsize=3,
                    label=f"{LABELS[meth]}, lr {st['lr'][meth]:g}")
    ax.axhline(100 * base_m["test_error"], color="k", ls="--", lw=1,
               label=f"unpruned ({base_m['macs'] / 1e6:.2f} M MACs)")
    ax.set_xlabel("MACs (millions, one 28x28 image; identical widths for every method)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{where(st)}, E = {st['E_per_layer']:g} epochs per layer, "
                 f"{st['total_epochs']:g} epochs per method\ncriterion {comp['criterion']}, "
                 f"{len(st['seeds'])} seeds; 1 test image = {100 / st['n_test']:.2f} points", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)


def _compare_section(comp, claims, lines):
    st = comp["setting"]
    n_test = st["n_test"]
    lr_list = ", ".join(f"{m} {st['lr'][m]:g}" for m in ORDER)
    lines += [f"## Progressive retraining vs. baselines, {where(st)} (test error, mean ± sd, ddof=1 over seeds)", "",
              f"{_base_text(st)} to convergence ({st['finetune_epochs']:g} "
              f"epochs at lr {st['finetune_lr']}; unpruned test error {_pct(st['base']['test_error'])}, val "
              f"{_pct(st['base']['val_error'])}, train {_pct(st['base'].get('train_error', float('nan')))}, "
              f"{st['base']['macs']:,} MACs); criterion `{comp['criterion']}`; E = {st['E_per_layer']:g} epochs per "
              f"layer, {st['total_epochs']:g} epochs in total for every method; every retraining call is SGD with its own "
              f"cosine schedule from the method's lr ({lr_list}, each chosen "
              f"from {st['lr_grid']} by mean val error{st.get('lr_note', '')}); seeds {st['seeds']}; params and MACs "
              f"are identical across "
              f"methods at each share. Test split: {n_test} images, one image = {100 / n_test:.2f} points.", "",
              "| share | MACs (reduction) | params | " + " | ".join(LABELS[m] for m in ORDER) + " |",
              "|---|---|---|" + "---|" * len(ORDER)]
    diffs = []
    for share in st["shares"]:
        rows = {m: _select(comp["runs"], method=m, share=share) for m in ORDER}
        p = rows["progressive"][0]
        red = 1 - p["macs"] / st["base"]["macs"]
        matched = all(r["macs"] == p["macs"] and r["params"] == p["params"] for m in ORDER for r in rows[m])
        lines.append(f"| {share} | {p['macs']:,} (-{100 * red:.0f}%) | {p['params']:,} | " + " | ".join(
            _fmt([r["test_error"] for r in rows[m]]) for m in ORDER) + " |")
        ours = {r["seed"]: r["test_error"] for r in rows["progressive"]}
        for m in ORDER[1:]:
            d = paired(ours, {r["seed"]: r["test_error"] for r in rows[m]})
            mo, mb = _ms(list(ours.values()))[0], _ms([r["test_error"] for r in rows[m]])[0]
            noise = bool(abs(d["mean"]) <= 2 * d["se"]) if d["n"] > 1 else None
            diffs.append((share, m, d, noise))
            claims.append({
                "claim": f"progressive retraining is at least as accurate as {LABELS[m]} at matched params/MACs",
                "setting": f"{where(st)} (base trained to convergence), share {share} per conv layer "
                           f"({p['macs']:,} MACs, -{100 * red:.0f}%; params/MACs identical across methods: {matched}), "
                           f"E = {st['E_per_layer']:g}, {st['total_epochs']:g} total epochs, lr {st['lr']['progressive']:g} vs "
                           f"{st['lr'][m]:g}, {len(st['seeds'])} seeds, test split",
                "ours": f"test error {_fmt(list(ours.values()))}",
                "baseline": f"test error {_fmt([r['test_error'] for r in rows[m]])}; paired difference "
                            f"{100 * d['mean']:+.2f} [95% CI {100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] points, "
                            f"{'within' if noise else 'beyond' if noise is not None else 'one seed, no'} 2 s.e.",
                "holds": bool(mo <= mb), "within_noise": noise, "plot": comp["plot"]})
    lines += ["", "Paired differences (progressive - baseline, test error points, per seed): "
              + "; ".join(f"share {sh} vs {m}: {100 * d['mean']:+.2f} [95% CI {100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] "
                          f"({d['wins']} wins / {d['ties']} ties / {d['losses']} losses)"
                          + (" (within 2 s.e.)" if noise else "") for sh, m, d, noise in diffs), ""]


def _lr_section(lrj, lines):
    grid = lrj["setting"]["lr_grid"]
    lines += [f"## Learning rate per method, {where(lrj['setting'])} (criterion `{lrj['criterion']}` for "
              f"progressive/(a)/(b); "
              f"mean over seeds and shares: val error / test error)", "",
              "| method | " + " | ".join(f"lr {g:g}" for g in grid) + " | chosen |", "|---|" + "---|" * (len(grid) + 1)]
    for m in ORDER:
        t = lrj["table"][m]
        lines.append(f"| {LABELS[m]} | " + " | ".join(
            f"{_pct(t[str(g)]['val_error'])} / {_pct(t[str(g)]['test_error'])}" for g in grid)
            + f" | {lrj['chosen'][m]:g} |")
    lines += ["", f"Rule: {lrj['rule']}; the same grid and rule for every method.", ""]


def _criteria_section(crit, claims, lines, default_in_code):
    rows, st = crit["runs"], crit["setting"]
    ranking = crit["mean_val_error"]
    # the benchmark's rule: equal error counts tie, a tie goes to the cheaper criterion (crit["best"])
    order = sorted(ranking, key=lambda c: (round(ranking[c], 9), c != crit.get("best")))
    best, second = order[0], order[1]
    shares = sorted({r["share"] for r in rows})
    test_mean = {c: _ms([r["test_error"] for r in _select(rows, criterion=c)])[0] for c in order}
    test_order = sorted(test_mean, key=test_mean.get)
    lines += [f"## Relevance criteria under progressive retraining (lr {st['lr']:g}, E = {st['E_per_layer']:g}; "
              f"val error / test error, mean ± sd, ddof=1 over seeds)", "",
              "| criterion | " + " | ".join(f"share {s}" for s in shares) + " | mean val (selection) | mean test |",
              "|---|" + "---|" * (len(shares) + 2)]
    for c in order:
        cells = [_select(rows, criterion=c, share=s) for s in shares]
        lines.append(f"| {c} | " + " | ".join(f"{_fmt([r['val_error'] for r in x])} / {_fmt([r['test_error'] for r in x])}"
                                             for x in cells) + f" | {_pct(ranking[c])} | {_pct(test_mean[c])} |")

    def per(c, split):
        return {(r["share"], r["seed"]): r[f"{split}_error"] for r in _select(rows, criterion=c)}

    dv, dt = paired(per(best, "val"), per(second, "val")), paired(per(best, "test"), per(second, "test"))
    n_val = st["n_val"]
    lines += ["", f"Selection: lowest mean validation error over {dv['n']} runs per criterion (seeds x shares; "
              f"{n_val} val images, one image = {100 / n_val:.2f} points). {best} vs runner-up {second}: val "
              f"{100 * dv['mean']:+.2f} [95% CI {100 * dv['ci95'][0]:+.2f}, {100 * dv['ci95'][1]:+.2f}] points, test {100 * dt['mean']:+.2f} [95% CI "
              f"{100 * dt['ci95'][0]:+.2f}, {100 * dt['ci95'][1]:+.2f}] points. Test order: {', '.join(f'{c} {_pct(test_mean[c])}' for c in test_order)}"
              + (" (same winner)." if test_order[0] == best else " (a different winner)."), ""]
    claims.append({
        "claim": f"default relevance criterion: {best} (lowest mean validation error over seeds and shares; "
                 "a tie goes to the cheaper criterion)",
        "setting": f"{where(st)}, progressive at shares {shares}, E = {st['E_per_layer']:g}, "
                   f"lr {st['lr']:g}, seeds {st['seeds']}, criteria {order}",
        "ours": f"{best}: val {_pct(ranking[best])}, test {_pct(test_mean[best])}",
        "baseline": f"runner-up {second}: val {_pct(ranking[second])}, test {_pct(test_mean[second])} (paired val margin "
                    f"{100 * -dv['mean']:.2f} points, 95% CI of the difference [{100 * dv['ci95'][0]:+.2f}, "
                    f"{100 * dv['ci95'][1]:+.2f}]); worst {order[-1]}: val "
                    f"{_pct(ranking[order[-1]])}; test order {test_order}",
        "holds": best == default_in_code, "within_noise": bool(abs(dv["mean"]) <= 2 * dv["se"]) if dv["n"] > 1 else None,
        "plot": crit["plot"]})


def _bn_section(bn: dict, lines: list) -> None:
    """Frozen vs. updated BatchNorm statistics of the frozen layers during progressive retraining."""
    from natkit.methods.progressive.process import DEFAULT_BN_STATS

    st, rows = bn["setting"], bn["runs"]
    names = {b: f"{b}{' (default)' if b == DEFAULT_BN_STATS else ''}" for b in ("frozen", "update")}
    lines += ["", f"## BatchNorm statistics of the frozen layers, {where(st)} (progressive, criterion "
              f"`{bn['criterion']}`, lr {st['lr']:g}, E = {st['E_per_layer']:g}; val error / test error, mean ± sd, ddof=1 "
              f"over seeds {st['seeds']})", "",
              "| share | " + " | ".join(names.values()) + " | paired test difference, update - frozen |",
              "|---|---|---|---|"]
    for sh in st["shares"]:
        cells, tests = [], {}
        for b in names:
            rs = _select(rows, bn_stats=b, share=sh)
            cells.append(f"{_fmt([r['val_error'] for r in rs])} / {_fmt([r['test_error'] for r in rs])}")
            tests[b] = {r["seed"]: r["test_error"] for r in rs}
        d = paired(tests["update"], tests["frozen"])
        lines.append(f"| {sh:g} | " + " | ".join(cells) + f" | {100 * d['mean']:+.2f} [95% CI {100 * d['ci95'][0]:+.2f}, "
                     f"{100 * d['ci95'][1]:+.2f}] points ({d['wins']} better / {d['ties']} equal / {d['losses']} worse) |")
    val = {b: float(np.mean([r["val_error"] for r in _select(rows, bn_stats=b)])) for b in names}
    better = min(val, key=lambda b: (round(val[b], 9), b != DEFAULT_BN_STATS))
    lines += ["", f"Mean val error over seeds and shares: frozen {_pct(val['frozen'])}, update "
              f"{_pct(val['update'])}; lower on validation: **{better}**; default in code: **{DEFAULT_BN_STATS}**.", ""]


def write_claims(out: Path):
    from natkit.methods.progressive.process import DEFAULT_CRITERION

    claims, lines = [], []
    comp = json.loads((out / "compare.json").read_text()) if (out / "compare.json").is_file() else None
    lrj = json.loads((out / "lr.json").read_text()) if (out / "lr.json").is_file() else None
    crit = json.loads((out / "criteria.json").read_text()) if (out / "criteria.json").is_file() else None
    if comp:
        _compare_section(comp, claims, lines)
    if lrj:
        _lr_section(lrj, lines)
    if crit:
        _criteria_section(crit, claims, lines, DEFAULT_CRITERION)
    if (out / "bn.json").is_file():
        _bn_section(json.loads((out / "bn.json").read_text()), lines)
    second = out / "fashion-mnist" / "compare.json"  # the Fashion-MNIST setting, run with --task fashion-mnist
    if second.is_file():
        _compare_section(json.loads(second.read_text()), claims, lines)
        if (out / "fashion-mnist" / "lr.json").is_file():
            _lr_section(json.loads((out / "fashion-mnist" / "lr.json").read_text()), lines)
        if (out / "fashion-mnist" / "bn.json").is_file():
            _bn_section(json.loads((out / "fashion-mnist" / "bn.json").read_text()), lines)
    # compute time behind the results: every stored run of this benchmark (digits and the second setting); a
    # part that finds its runs cached adds nothing
    seconds = sum(r["seconds"] for f in (out / "runs.json", out / "fashion-mnist" / "runs.json") if f.is_file()
                  for r in json.loads(f.read_text())["runs"])
    lines += ["", f"Compute behind these results: {seconds / 3600:.1f} h of stored runs. Verdicts under the registered "
              "rules: results/progressive/claims.json (results/CLAIMS.md)."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    from benchmarks.progressive import verdicts

    verdicts.update()
