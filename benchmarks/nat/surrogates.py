"""Kendall tau of each accuracy surrogate on held-out archive members.

Setting: supernet pretrained on Fashion-MNIST (cached), warm-up adapted to digits; an archive of
`--n` random `nat_small` subnets evaluated for real (in place, val error); `--splits` random
70/30 splits; each surrogate fitted on 70% and scored on the 30% it never saw. The adaptive switch
picks among the five by cross-validated tau (mean - std) on the training part only.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.nat.common import RESULTS, target_supernet, write_result
from natkit.data import load_task
from natkit.methods.nat.method import load_nat_space
from natkit.methods.nat.supernet import InPlaceEvaluator
from natkit.methods.nat.surrogate import create_surrogate, rank_metrics
from natkit.report import stats

NAMES = ["rbf", "rbf_ensemble", "gp", "mlp", "trees", "adaptive"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    nat = load_nat_space("nat_small")[2]
    task = load_task("digits", seed=args.seed)
    net, space, nat = target_supernet(task, args.seed, warmup_epochs=float(nat["warmup_epochs"]))
    ev = InPlaceEvaluator(net, space, task, n_calib=int(nat["n_calib"]), seed=args.seed)
    X = np.unique(space.sample(args.n, np.random.default_rng(args.seed + 7)), axis=0)
    y = np.array([ev.error_of(x) for x in X])
    feats = space.features(X)
    rng = np.random.default_rng(args.seed)
    scores = {n: [] for n in NAMES}
    chosen = []
    for s in range(args.splits):
        perm = rng.permutation(len(X))
        tr, te = perm[: int(0.7 * len(X))], perm[int(0.7 * len(X)):]
        for n in NAMES:
            m = create_surrogate(n, seed=s).fit(feats[tr], y[tr])
            scores[n].append(rank_metrics(y[te], m.predict(feats[te])))
            if n == "adaptive":
                chosen.append(m.chosen)
    table = {n: {k: (stats.summarize([r[k] for r in v]).mean, stats.sd([r[k] for r in v]))
                 for k in ("kendall", "spearman", "rmse")} for n, v in scores.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(NAMES, [table[n]["kendall"][0] for n in NAMES], yerr=[table[n]["kendall"][1] for n in NAMES], capsize=4)
    ax.set(ylabel="Kendall tau on held-out subnets", title=f"NAT surrogates ({len(X)} subnets, {args.splits} splits)")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "surrogates.png", dpi=120)
    singles = {n: table[n]["kendall"][0] for n in NAMES if n != "adaptive"}
    best = max(singles, key=singles.get)
    ada = table["adaptive"]["kendall"][0]
    claims = [{"claim": "the adaptive switch ranks held-out subnets about as well as the best single surrogate "
                        "(within 0.05 Kendall tau) without knowing which one that is",
               "setting": f"digits, nat_small, {len(X)} real evaluations, {args.splits} random 70/30 splits",
               "ours": f"adaptive tau {ada:.3f} (picked {', '.join(sorted(set(chosen)))})",
               "baseline": f"best single {best} {singles[best]:.3f}; " +
                           ", ".join(f"{n} {v:.3f}" for n, v in singles.items()),
               "holds": bool(ada >= singles[best] - 0.05), "plot": "results/nat/surrogates.png"}]
    md = ["# NAT surrogates: held-out rank correlation", "", "| surrogate | Kendall tau | Spearman | RMSE |",
          "|---|---|---|---|"]
    for n in NAMES:
        t = table[n]
        md.append(f"| {n} | {t['kendall'][0]:.3f} ± {t['kendall'][1]:.3f} | {t['spearman'][0]:.3f} | "
                  f"{t['rmse'][0]:.4f} |")
    md.append(f"\nerror range of the archive: {y.min():.3f} – {y.max():.3f}; adaptive picked: {chosen}")
    write_result("surrogates", {"claims": claims, "table": table, "chosen": chosen, "n": len(X),
                                "errors": y.tolist()}, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
