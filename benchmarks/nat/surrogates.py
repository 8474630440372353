"""Kendall tau of each accuracy surrogate on held-out archive members, over seeds.

Setting per seed: supernet pretrained on Fashion-MNIST (cached), warm-up adapted to digits (cached per
seed, shared with benchmarks.nat.search/transfer); an archive of `--n` random `nat_small` subnets evaluated
for real (in place, val error); `--splits` random 70/30 splits; each surrogate fitted on 70% and scored on
the 30% it never saw. The adaptive switch picks among the five by cross-validated tau (mean - std) on the
training part only.

Over seeds (registered claim ``nat.surrogates.adaptive``): each family's tau is its mean over the seed's
splits; the baseline is the single family with the best mean tau over all seeds (the best single
surrogate in hindsight), and the statistic the paired difference adaptive minus that family over seeds.
Each seed writes results/nat/surrogates_seeds/seed<N>.json as it finishes (about 2 minutes once the
supernets are cached); ``--resume`` keeps the seeds already written with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.nat.common import RESULTS, target_supernet, write_result
from benchmarks.perf.common import write_json
from natkit.data import load_task
from natkit.methods.nat.method import load_nat_space
from natkit.methods.nat.supernet import InPlaceEvaluator
from natkit.methods.nat.surrogate import create_surrogate, rank_metrics
from natkit.report import stats
from natkit.report.provenance import provenance

NAMES = ["rbf", "rbf_ensemble", "gp", "mlp", "trees", "adaptive"]
METRICS = ("kendall", "spearman", "rmse")


def run_seed(seed: int, n: int, splits: int) -> dict:
    started = time.time()
    nat = load_nat_space("nat_small")[2]
    task = load_task("digits", seed=seed)
    net, space, nat = target_supernet(task, seed, warmup_epochs=float(nat["warmup_epochs"]))
    ev = InPlaceEvaluator(net, space, task, n_calib=int(nat["n_calib"]), seed=seed)
    X = np.unique(space.sample(n, np.random.default_rng(seed + 7)), axis=0)
    y = np.array([ev.error_of(x) for x in X])
    feats = space.features(X)
    rng = np.random.default_rng(seed)
    scores = {name: [] for name in NAMES}
    chosen = []
    for s in range(splits):
        perm = rng.permutation(len(X))
        tr, te = perm[: int(0.7 * len(X))], perm[int(0.7 * len(X)):]
        for name in NAMES:
            m = create_surrogate(name, seed=s).fit(feats[tr], y[tr])
            scores[name].append(rank_metrics(y[te], m.predict(feats[te])))
            if name == "adaptive":
                chosen.append(m.chosen)
    table = {name: {k: (stats.summarize([r[k] for r in v]).mean, stats.sd([r[k] for r in v])) for k in METRICS}
             for name, v in scores.items()}
    return {"seed": seed, "settings": {"n": n, "splits": splits}, "table": table, "chosen": chosen,
            "n": len(X), "errors": y.tolist(), "provenance": provenance(started)}


def summarise(runs: list[dict], started: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [r["seed"] for r in runs]
    tau = {name: [r["table"][name]["kendall"][0] for r in runs] for name in NAMES}
    table = {name: {k: (stats.summarize([r["table"][name][k][0] for r in runs]).mean,
                        stats.sd([r["table"][name][k][0] for r in runs]) if len(runs) > 1 else 0.0)
                    for k in METRICS} for name in NAMES}
    singles = {name: table[name]["kendall"][0] for name in NAMES if name != "adaptive"}
    best = max(singles, key=singles.get)
    p = stats.paired(tau["adaptive"], tau[best])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(NAMES, [table[n]["kendall"][0] for n in NAMES], yerr=[table[n]["kendall"][1] for n in NAMES], capsize=4)
    ax.set(ylabel="Kendall tau on held-out subnets",
           title=f"NAT surrogates, seeds {seeds} (mean ± sd over seeds of each seed's {runs[0]['settings']['splits']}-split mean)")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "surrogates.png", dpi=120)
    plt.close(fig)
    md = ["# NAT surrogates: held-out rank correlation", "",
          f"digits, nat_small; per seed {runs[0]['n']} real evaluations and {runs[0]['settings']['splits']} random "
          f"70/30 splits; seeds {seeds}. Mean ± sd over seeds of each seed's split mean.", "",
          "| surrogate | Kendall tau | Spearman | RMSE |", "|---|---|---|---|"]
    for name in NAMES:
        t = table[name]
        md.append(f"| {name} | {t['kendall'][0]:.3f} ± {t['kendall'][1]:.3f} | {t['spearman'][0]:.3f} | "
                  f"{t['rmse'][0]:.4f} |")
    md += ["", f"Adaptive minus the best single family over seeds ({best}), Kendall tau, paired over seeds: "
           f"{p.fmt(digits=3, unit='')}.", "", "| seed | adaptive tau | " + " | ".join(singles) + " | adaptive picked |",
           "|---" * (len(singles) + 3) + "|"]
    for r in runs:
        md.append(f"| {r['seed']} | {r['table']['adaptive']['kendall'][0]:.3f} | " +
                  " | ".join(f"{r['table'][n]['kendall'][0]:.3f}" for n in singles) +
                  f" | {', '.join(sorted(set(r['chosen'])))} |")
    write_result("surrogates", {"seeds": seeds, "table": table, "best_single": best, "adaptive_minus_best": p.as_dict(),
                                "runs": runs}, "\n".join(md) + "\n", started,
                 derived_from="results/nat/surrogates_seeds/seed*.json")
    print("\n".join(md), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--resume", action="store_true",
                    help="keep the per-seed files already written with the same settings, run only the missing seeds")
    args = ap.parse_args()
    started = time.time()
    per_seed = RESULTS / "surrogates_seeds"
    runs = []
    for seed in args.seeds:
        path = per_seed / f"seed{seed}.json"
        data = json.loads(path.read_text()) if args.resume and path.is_file() else None
        if data is None or data.get("settings") != {"n": args.n, "splits": args.splits}:
            data = run_seed(seed, args.n, args.splits)
            write_json(path, data, default=float)
        else:
            print(f"seed {seed}: reusing {path} ({data['provenance']['commit'][:7]})", flush=True)
        runs.append(data)
    summarise(runs, started)


if __name__ == "__main__":
    main()
