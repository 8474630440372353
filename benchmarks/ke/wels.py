"""KELS vs WELS: the two ways of splitting a network into fit and reset hypotheses, same everything else.

The paper reports that the convolution-aware split (KELS) evolves a better dense network than the
weight-level split (WELS, a Bernoulli(s) mask per weight); WELS also yields no slim network.
Setting: `digits` (1,151 training images, 8 px), vgg_small from scratch, s = 0.5, N generations of e
epochs, 5 seeds; test error of the dense network after generation N (and generation 1 as reference).
~2-4 minutes on one contended core. Writes results/ke/wels.json, results/ke/wels.md, results/ke/wels.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

from benchmarks.ke.small_data import write_claims
from natkit.data import load_task
from natkit.methods.ke.method import evolve
from natkit.nets import create_model
from natkit.train import TrainConfig
from natkit.utils.seed import derive_seed
from natkit.report import stats
from natkit.report.provenance import stamp


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "ke"))
    p.add_argument("--task", default="digits")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--split-rate", type=float, default=0.5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(epochs=args.epochs, batch_size=32, label_smoothing=0.1)
    t0 = time.time()
    errors = {"kels": [], "wels": []}
    for seed in range(args.seeds):
        task = load_task(args.task, seed=seed)
        for mode in ("kels", "wels"):
            torch.manual_seed(derive_seed(seed, "init"))
            model = create_model("vgg_small", num_classes=task.num_classes, in_channels=task.in_channels)
            gens = evolve(model, task, args.split_rate, args.generations, cfg, mode=mode, seed=seed, split="test")
            errors[mode].append([g.dense["error"] for g in gens])
            print(f"seed {seed} {mode}: dense test error per generation {errors[mode][-1]}", flush=True)
    elapsed = time.time() - t0
    N = args.generations
    k = np.array(errors["kels"])
    w = np.array(errors["wels"])

    def f(a):
        return stats.summarize(a).fmt(scale=100, unit=" %")

    claim = {"claim": "KELS evolves a better dense network than WELS (paper: KELS > WELS)",
             "setting": f"{args.task}, vgg_small from scratch, s={args.split_rate}, N={N} x {args.epochs} epochs, "
                        f"dense test error, {args.seeds} seeds (mean ± sd, ddof=1)",
             "ours": f"KELS gen {N}: {f(k[:, -1])}", "baseline": f"WELS gen {N}: {f(w[:, -1])}",
             "holds": bool(k[:, -1].mean() < w[:, -1].mean()), "plot": "results/ke/wels.png",
             "generation_1": f"{f(k[:, 0])} (same training for both splits)"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    g = np.arange(1, N + 1)
    for a, label in ((k, "KELS (kernel-level)"), (w, "WELS (weight-level)")):
        ax.errorbar(g, 100 * a.mean(0), yerr=100 * stats.sd_axis0(a), marker="o", capsize=3, label=label)
    ax.set_xlabel(f"generation ({args.epochs} epochs each)")
    ax.set_ylabel("dense test error (%)")
    ax.set_title(f"{args.task}: KE dense network, s={args.split_rate}")
    ax.set_xticks(g)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "wels.png", dpi=120)
    plt.close(fig)
    (out / "wels.json").write_text(json.dumps(stamp({"settings": vars(args), "elapsed_s": elapsed, "errors": errors,
                                               "claims": [claim]}), indent=2))
    md = ["# KELS vs WELS (dense network, test error)", "", "| split | gen 1 | gen N |", "|---|---|---|",
          f"| KELS | {f(k[:, 0])} | {f(k[:, -1])} |", f"| WELS | {f(w[:, 0])} | {f(w[:, -1])} |", "",
          f"{elapsed / 60:.1f} min, one thread."]
    (out / "wels.md").write_text("\n".join(md) + "\n")
    write_claims(out)
    print("\n".join(md))


if __name__ == "__main__":
    main()
