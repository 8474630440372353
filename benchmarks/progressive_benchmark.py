"""Progressive retraining vs. its baselines, and the choice of the default relevance criterion.

Setting: ``vgg_small`` pretrained on Fashion-MNIST (natkit's cached source model), fine-tuned as a whole on
the ``digits`` target (8 px digits upsampled to 28 px); that fine-tuned network is the starting point of
every method. Two operating points eliminate the same share of kernels in every conv layer, chosen so
every layer's count is an integer and all methods reach *identical* widths (hence identical params and
MACs): share 0.375 (-60% MACs) and 0.5 (-74% MACs).

Methods, all at equal total training epochs (6 conv layers x E):
- ``progressive``    layer by layer; after each layer, retrain layers 1..l+1 for E epochs, later layers frozen.
- ``global_retrain`` (a) same criterion and order, but each layer is eliminated in ``ACTIONS`` actions,
                     each followed by retraining the *entire* model for E / ACTIONS epochs.
- ``one_shot``       (b) same criterion scored once on the trained model, all layers eliminated at once,
                     then the entire model retrained for 6 E epochs.
- ``tp_l1``          (c) Torch-Pruning L1 magnitude pruning to the same per-layer share, then the entire
                     model retrained for 6 E epochs.

Part ``criteria`` runs progressive with the four objective criteria at share 0.5 and picks the default by
mean *validation* error over seeds; part ``compare`` reports *test* error of all four methods at both
shares (progressive with the chosen criterion); part ``budget`` repeats progressive, (b) and (c) at share
0.5 with 2 E epochs per layer. Outputs: results/progressive/{criteria,compare}.json,
claims.json, results.md and PNG plots.

Sizes were chosen for the 15-minute budget under CPU contention (2 cores shared by ~7 processes):
E = 1 epoch per layer over the 1,151 training digits (and 2 E in the budget part), 3 seeds; about 7-11
minutes on this machine while other jobs ran. ``--quick``: one operating point, one seed,
two criteria, a few batches per epoch (< 2 minutes; numbers are not meaningful).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from natkit.data import load_task  # noqa: E402
from natkit.measure import measure  # noqa: E402
from natkit.methods import progressive as P  # noqa: E402
from natkit.methods.context import RunContext  # noqa: E402
from natkit.prune.relevance import list_criteria, lowest_ranked, n_to_eliminate, score_kernels  # noqa: E402
from natkit.train import TrainConfig, evaluate, train  # noqa: E402
from natkit.utils.seed import derive_seed  # noqa: E402

OUT = ROOT / "results" / "progressive"
RES, CH = 28, 1
ACTIONS = 2  # elimination actions per layer for baseline (a)


def log(msg):
    print(f"[progressive-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def base_model(task, quick: bool, seed: int = 0):
    """The fine-tuned starting network, built exactly as ``natkit search progressive`` builds it."""

    class _Archive:  # trained_base only needs the task and options from the context
        pass

    ctx = RunContext(method="progressive", task=task, archive=_Archive(), run_id=0, out_dir=OUT, seed=seed,
                     quick=quick, verbose=True)
    s = P.settings_from(ctx)
    return P.trained_base(ctx, s), s


def metrics(model, task, split_errors=("val", "test")) -> dict:
    m = measure(model, RES, CH)
    for split in split_errors:
        m[f"{split}_error"] = evaluate(model, task, split, resolution=RES, channels=CH)["error"]
    m["widths"] = P.conv_widths(model)
    return m


def run_progressive(base, task, share, criterion, rt, score_batches, seed):
    model = copy.deepcopy(base)
    n = len(P.conv_widths(model))
    P.simplify(model, task, [share] * n, rt, criterion=criterion, score_batches=score_batches, seed=seed)
    return model


def run_global_retrain(base, task, share, criterion, rt, score_batches, seed):
    """(a) Same criterion and layer order; after each elimination action the entire model is retrained."""
    model = copy.deepcopy(base)
    example = P.example_input(CH, RES)
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs / ACTIONS})
    convs = [l.name for l in P.weight_layers(model) if l.is_conv]
    for pos, name in enumerate(convs):
        conv = dict(model.named_modules())[name]
        total = n_to_eliminate(conv.out_channels, share)
        chunks = [total // ACTIONS + (1 if i < total % ACTIONS else 0) for i in range(ACTIONS)]
        for a, n in enumerate(chunks):
            if not n:
                continue
            conv = dict(model.named_modules())[name]
            scores = score_kernels(model, conv, score_batches, criterion)
            P.eliminate(model, conv, lowest_ranked(scores, n), example)
            train(model, task, cfg, resolution=RES, channels=CH, seed=derive_seed(seed, "a", pos, a))
    return model


def run_one_shot(base, task, share, criterion, rt, score_batches, seed):
    """(b) Score every layer on the trained model, eliminate all at once, retrain the entire model."""
    model = copy.deepcopy(base)
    example = P.example_input(CH, RES)
    plan = {}
    for layer in [l for l in P.weight_layers(model) if l.is_conv]:
        scores = score_kernels(model, layer.module, score_batches, criterion)
        plan[layer.name] = lowest_ranked(scores, n_to_eliminate(layer.module.out_channels, share))
    for name, kernels in plan.items():  # one surgery per layer; indices stay valid (outputs of that layer)
        P.eliminate(model, dict(model.named_modules())[name], kernels, example)
    n = len(plan)
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs * n})
    train(model, task, cfg, resolution=RES, channels=CH, seed=derive_seed(seed, "b"))
    return model


def run_tp_l1(base, task, share, criterion, rt, score_batches, seed):
    """(c) Torch-Pruning L1 magnitude pruning (dense head ignored, as in the others), full retraining."""
    from natkit.prune.surgery import magnitude_prune

    model = copy.deepcopy(base)
    hidden = [m for m in model.classifier if isinstance(m, nn.Linear)][:-1]
    magnitude_prune(model, P.example_input(CH, RES), ratio=share, ignored_layers=hidden, importance="l1")
    n = len(P.conv_widths(base))
    cfg = TrainConfig(**{**rt.cfg.to_dict(), "epochs": rt.cfg.epochs * n})
    train(model, task, cfg, resolution=RES, channels=CH, seed=derive_seed(seed, "c"))
    return model


METHODS = {"progressive": run_progressive, "global_retrain": run_global_retrain, "one_shot": run_one_shot,
           "tp_l1": run_tp_l1}
BUDGET_METHODS = ("progressive", "one_shot", "tp_l1")  # (a) is the slowest and the weakest at E
LABELS = {"progressive": "progressive (ours)", "global_retrain": "(a) whole-model retrain per action",
          "one_shot": "(b) one-shot + full retrain", "tp_l1": "(c) Torch-Pruning L1 + full retrain"}


def one(method, base, task, share, criterion, rt, seed, n_score):
    score_batches = P.fixed_subset(task, n_score, resolution=RES, channels=CH, seed=derive_seed(seed, "subset"))
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = METHODS[method](base, task, share, criterion, rt, score_batches, seed)
    m = metrics(model, task)
    m.update(method=method, share=share, criterion=criterion if method != "tp_l1" else "l1", seed=seed,
             seconds=round(time.perf_counter() - t0, 1))
    log(f"{method:15s} {m['criterion']:15s} share {share} seed {seed}: val {m['val_error']:.4f} "
        f"test {m['test_error']:.4f} macs {m['macs']:,} ({m['seconds']} s)")
    return m


def summarise(rows, keys=("method", "criterion", "share")):
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        d = dict(zip(keys, key))
        for metric in ("val_error", "test_error"):
            v = np.array([r[metric] for r in rs])
            d[metric] = float(v.mean())
            d[metric + "_std"] = float(v.std())
        d.update(params=rs[0]["params"], macs=rs[0]["macs"], widths=rs[0]["widths"], n=len(rs),
                 params_all_equal=len({r["params"] for r in rs}) == 1)
        out.append(d)
    return out


def plot_criteria(summary, base_m, path):
    """Validation (selection) and test error of progressive retraining per criterion, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crits = sorted({s["criterion"] for s in summary})
    shares = sorted({s["share"] for s in summary})
    bars = [(sh, split) for sh in shares for split in ("val", "test")]
    fig, ax = plt.subplots(figsize=(7, 4))
    w = 0.8 / len(bars)
    for j, (sh, split) in enumerate(bars):
        vals = [next(s for s in summary if s["criterion"] == c and s["share"] == sh) for c in crits]
        ax.bar(np.arange(len(crits)) + j * w, [100 * v[f"{split}_error"] for v in vals], w,
               yerr=[100 * v[f"{split}_error_std"] for v in vals], hatch="" if split == "val" else "//",
               label=f"{split} error, share {sh} ({vals[0]['macs']:,} MACs)")
    ax.axhline(100 * base_m["val_error"], color="k", ls="--", lw=1, label="unpruned, val")
    ax.axhline(100 * base_m["test_error"], color="k", ls=":", lw=1, label="unpruned, test")
    ax.set_xticks(np.arange(len(crits)) + w * (len(bars) - 1) / 2)
    ax.set_xticklabels(crits)
    ax.set_ylabel("error (%)")
    ax.set_title("progressive retraining on digits: relevance criteria (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_compare(out: Path, base_m):
    """Test error against MACs per method; filled markers E epochs per layer, hollow ones 2E (budget part)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = json.loads((out / "compare.json").read_text())
    budget = json.loads((out / "budget.json").read_text()) if (out / "budget.json").is_file() else None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = {}
    for i, meth in enumerate(METHODS):
        pts = sorted([s for s in comp["summary"] if s["method"] == meth], key=lambda s: s["macs"])
        line = ax.errorbar([s["macs"] / 1e6 * (1 + (i - 1.5) * 0.01) for s in pts],
                           [100 * s["test_error"] for s in pts], yerr=[100 * s["test_error_std"] for s in pts],
                           marker="os^D"[i], capsize=3, label=f"{LABELS[meth]}, E={comp['setting']['E_per_layer']:g}")
        colors[meth] = line[0].get_color()
        if budget:
            b = [s for s in budget["summary"] if s["method"] == meth]
            if b:
                ax.errorbar([s["macs"] / 1e6 * (1 + (i - 1.5) * 0.01) + 0.06 for s in b], [100 * s["test_error"] for s in b],
                            yerr=[100 * s["test_error_std"] for s in b], marker="os^D"[i], mfc="none", ls="none",
                            capsize=3, color=colors[meth])
    ax.axhline(100 * base_m["test_error"], color="k", ls="--", lw=1,
               label=f"unpruned ({base_m['macs'] / 1e6:.2f} M MACs)")
    ax.set_xlabel("MACs (millions, one 28x28 image; identical widths for every method)")
    ax.set_ylabel("test error (%)")
    title = "vgg_small (Fashion-MNIST) -> digits, equal training epochs"
    if budget:
        title += f"\nhollow, shifted right: E={budget['setting']['E_per_layer']:g}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["criteria", "compare", "budget", "all", "claims"], default="all")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=None, help="E, retraining epochs per layer")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.part == "claims":  # re-derive claims.json/results.md from the stored JSON
        prev = json.loads((out / "claims.json").read_text()).get("seconds", 0) if (out / "claims.json").is_file() else 0
        write_claims(out, prev)
        return

    task = load_task("digits", seed=0)
    base, s = base_model(task, args.quick)
    base_m = metrics(base, task)
    log(f"base: {base_m}")
    E = args.epochs or (1.0 if not args.quick else 1.0)
    rt = P.Retraining(TrainConfig(epochs=E, lr=s["lr"], batch_size=s["batch_size"],
                                  max_batches=4 if args.quick else None), resolution=RES, channels=CH)
    shares = [0.5] if args.quick else [0.375, 0.5]
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    # the four objective criteria of the issue; l1 (data-free) is baseline (c)'s criterion, compared there
    criteria = ["mean_abs", "loss_increase"] if args.quick else [c for c in list_criteria() if c != "l1"]
    criteria_shares = shares[-1:]  # the stronger reduction separates criteria most; keeps the time budget
    n_score = 64 if args.quick else 256
    setting = {"model": s["model"], "source": "fashion-mnist", "target": "digits", "resolution": RES,
               "E_per_layer": E, "total_epochs": E * len(base_m["widths"]), "lr": s["lr"], "finetune_lr": s["finetune_lr"],
               "batch_size": s["batch_size"], "bn_stats": "frozen",
               "finetune_epochs": s["finetune_epochs"], "source_epochs": s["source_epochs"], "shares": shares,
               "seeds": seeds, "score_images": n_score, "actions_per_layer_a": ACTIONS, "quick": args.quick,
               "base": base_m, "threads": torch.get_num_threads()}

    rows = []
    crit_path = out / "criteria.json"
    if args.part in ("criteria", "all"):
        for share in criteria_shares:
            for seed in seeds:
                for c in criteria:
                    rows.append(one("progressive", base, task, share, c, rt, seed, n_score))
        summary = summarise(rows)
        ranking = {}
        for c in criteria:
            ranking[c] = float(np.mean([x["val_error"] for x in summary if x["criterion"] == c]))
        best = min(ranking, key=ranking.get)
        crit = {"setting": setting, "criteria_shares": criteria_shares, "runs": rows, "summary": summary, "mean_val_error": ranking, "best": best,
                "plot": "results/progressive/criteria.png"}
        crit_path.write_text(json.dumps(crit, indent=2))
        plot_criteria(summary, base_m, out / "criteria.png")
        log(f"criteria by mean val error: {ranking}; best {best}")
    crit = json.loads(crit_path.read_text()) if crit_path.is_file() else None
    chosen = crit["best"] if crit else P.DEFAULT_CRITERION

    if args.part in ("compare", "all"):
        comp_rows = [dict(r) for r in (crit["runs"] if crit else []) if r["criterion"] == chosen
                     and r["share"] in shares and r["seed"] in seeds]
        done = {(r["share"], r["seed"]) for r in comp_rows}
        for share in shares:
            for seed in seeds:
                if (share, seed) not in done:
                    comp_rows.append(one("progressive", base, task, share, chosen, rt, seed, n_score))
        for share in shares:
            for seed in seeds:
                for meth in ("global_retrain", "one_shot", "tp_l1"):
                    comp_rows.append(one(meth, base, task, share, chosen, rt, seed, n_score))
        summary = summarise(comp_rows, keys=("method", "share"))
        comp = {"setting": setting, "criterion": chosen, "runs": comp_rows, "summary": summary,
                "plot": "results/progressive/compare.png"}
        (out / "compare.json").write_text(json.dumps(comp, indent=2))
    if args.part == "budget" or (args.part == "all" and not args.quick):
        # the same comparison with twice the retraining epochs, at the stronger reduction only
        rt2 = P.Retraining(TrainConfig(**{**rt.cfg.to_dict(), "epochs": 2 * E}), resolution=RES, channels=CH)
        rows2 = []
        for seed in seeds:
            for meth in BUDGET_METHODS:
                rows2.append(one(meth, base, task, shares[-1], chosen, rt2, seed, n_score))
        setting2 = {**setting, "E_per_layer": 2 * E, "total_epochs": 2 * E * len(base_m["widths"]),
                    "shares": [shares[-1]]}
        (out / "budget.json").write_text(json.dumps(
            {"setting": setting2, "criterion": chosen, "runs": rows2,
             "summary": summarise(rows2, keys=("method", "share")), "plot": "results/progressive/compare.png"},
            indent=2))
    if (out / "compare.json").is_file():
        plot_compare(out, base_m)
    write_claims(out, time.perf_counter() - t_start)
    log(f"done in {time.perf_counter() - t_start:.0f} s")


def _pct(x):
    return f"{100 * x:.2f}%"


def write_claims(out: Path, seconds: float):
    claims, lines = [], []
    crit = json.loads((out / "criteria.json").read_text()) if (out / "criteria.json").is_file() else None
    comp = json.loads((out / "compare.json").read_text()) if (out / "compare.json").is_file() else None
    if comp:
        st = comp["setting"]
        lines += ["## Progressive retraining vs. baselines (test error, mean ± std over seeds)", "",
                  f"vgg_small pretrained on Fashion-MNIST, fine-tuned on digits (unpruned test error "
                  f"{_pct(st['base']['test_error'])}, {st['base']['macs']:,} MACs); criterion `{comp['criterion']}`; "
                  f"E = {st['E_per_layer']:g} epoch(s) per layer, {st['total_epochs']:g} epochs in total for every method "
                  f"(SGD, lr {st['lr']}, cosine per retraining call); seeds {st['seeds']}; params and MACs are identical "
                  f"across methods at each share.", "",
                  "| share | MACs (reduction) | params | " + " | ".join(LABELS[m] for m in METHODS) + " |",
                  "|---|---|---|" + "---|" * len(METHODS)]
        for share in st["shares"]:
            row = {s["method"]: s for s in comp["summary"] if s["share"] == share}
            p = row["progressive"]
            red = 1 - p["macs"] / st["base"]["macs"]
            lines.append(f"| {share} | {p['macs']:,} (-{100 * red:.0f}%) | {p['params']:,} | " + " | ".join(
                f"{_pct(row[m]['test_error'])} ± {_pct(row[m]['test_error_std'])}" for m in METHODS) + " |")
            matched = all(row[m]["macs"] == p["macs"] and row[m]["params"] == p["params"] for m in METHODS)
            for m in ("global_retrain", "one_shot", "tp_l1"):
                holds = p["test_error"] <= row[m]["test_error"]
                claims.append({
                    "claim": f"progressive retraining is at least as accurate as {LABELS[m]} at matched params/MACs",
                    "setting": f"vgg_small FMNIST->digits, share {share} per conv layer ({p['macs']:,} MACs, "
                               f"-{100 * red:.0f}%; params/MACs identical across methods: {matched}), "
                               f"{st['total_epochs']} total epochs, {len(st['seeds'])} seed(s), test split",
                    "ours": f"test error {_pct(p['test_error'])} ± {_pct(p['test_error_std'])}",
                    "baseline": f"test error {_pct(row[m]['test_error'])} ± {_pct(row[m]['test_error_std'])}",
                    "holds": bool(holds), "plot": comp["plot"]})
        lines.append("")
    budget = json.loads((out / "budget.json").read_text()) if (out / "budget.json").is_file() else None
    if budget:
        st = budget["setting"]
        row = {s["method"]: s for s in budget["summary"]}
        p = row["progressive"]
        lines += [f"### Twice the epochs: E = {st['E_per_layer']:g} per layer ({st['total_epochs']:g} in total), "
                  f"share {st['shares'][0]}", "", "| " + " | ".join(LABELS[m] for m in row) + " |",
                  "|" + "---|" * len(row),
                  "| " + " | ".join(f"{_pct(row[m]['test_error'])} ± {_pct(row[m]['test_error_std'])}"
                                    for m in row) + " |", ""]
        for m in [m for m in row if m != "progressive"]:
            claims.append({
                "claim": f"progressive retraining is at least as accurate as {LABELS[m]} at matched params/MACs "
                         f"(twice the epochs)",
                "setting": f"as above, share {st['shares'][0]} ({p['macs']:,} MACs), E = {st['E_per_layer']:g} per layer, "
                           f"{st['total_epochs']:g} total epochs, {len(st['seeds'])} seed(s), test split",
                "ours": f"test error {_pct(p['test_error'])} ± {_pct(p['test_error_std'])}",
                "baseline": f"test error {_pct(row[m]['test_error'])} ± {_pct(row[m]['test_error_std'])}",
                "holds": bool(p["test_error"] <= row[m]["test_error"]), "plot": budget["plot"]})
    if crit:
        ranking = crit["mean_val_error"]
        order = sorted(ranking, key=ranking.get)
        best, second = order[0], order[1]
        lines += ["## Relevance criteria under progressive retraining (validation error, mean over seeds)",
                  "", "| criterion | " + " | ".join(f"share {s}: val error / test error" for s in crit["criteria_shares"])
                  + " | mean val error |",
                  "|---|" + "---|" * (len(crit["criteria_shares"]) + 1)]
        for c in order:
            cells = [next(x for x in crit["summary"] if x["criterion"] == c and x["share"] == s)
                     for s in crit["criteria_shares"]]
            lines.append(f"| {c} | " + " | ".join(f"{_pct(x['val_error'])} ± {_pct(x['val_error_std'])} / "
                                                 f"{_pct(x['test_error'])} ± {_pct(x['test_error_std'])}"
                                                 for x in cells) + f" | {_pct(ranking[c])} |")
        test_mean = {c: float(np.mean([x["test_error"] for x in crit["summary"] if x["criterion"] == c]))
                     for c in order}
        test_order = sorted(test_mean, key=test_mean.get)
        n_val = len(load_task("digits", seed=0).val)
        lines += ["", f"Selection is by validation error ({n_val} images; one image = {100 / n_val:.2f} points). "
                  f"On the test split "
                  f"the order is {', '.join(f'{c} {_pct(test_mean[c])}' for c in test_order)}: "
                  + ("the same winner." if test_order[0] == best else
                     "a different winner, so the margin between criteria is within the noise of these splits."), ""]
        claims.append({
            "claim": f"default relevance criterion: {best} (lowest mean validation error after progressive retraining)",
            "setting": f"vgg_small FMNIST->digits, share {crit['criteria_shares']} per conv layer, seeds {crit['setting']['seeds']}, "
                       f"criteria {order}",
            "ours": f"{best}: val error {_pct(ranking[best])}",
            "baseline": f"runner-up {second}: {_pct(ranking[second])} (margin {100 * (ranking[second] - ranking[best]):.2f} "
                        f"points); worst {order[-1]}: {_pct(ranking[order[-1]])}; on test: "
                        + ", ".join(f"{c} {_pct(test_mean[c])}" for c in test_order),
            "holds": best == P.DEFAULT_CRITERION, "plot": crit["plot"]})
    (out / "claims.json").write_text(json.dumps({"claims": claims, "seconds": round(seconds, 1),
                                                 "default_criterion_in_code": P.DEFAULT_CRITERION}, indent=2))
    (out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
