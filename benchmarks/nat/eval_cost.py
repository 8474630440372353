"""Cost of one real NAT evaluation (in place on the supernet, BN recalibration included) relative
to plain forward passes of the extracted subnet over the same images.

Setting: supernet pretrained on Fashion-MNIST (cached), warm-up adapted to digits; 2 extreme and
20 random `nat_small` genomes; 256 calibration + all val images. CPU time (process_time) is the
primary measure because wall time on a shared 2-core host mostly measures the neighbours; wall
time is reported too. The registered measure (nat.eval_cost.cold) is the COLD one: in a search every
subnet is new, so its first evaluation, which pays oneDNN's primitive creation for its conv shapes, is
the real cost; it is compared with the plain forward passes of the extracted subnet (warm, median of
``reps``). The warm-vs-warm ratio is kept as a secondary number. A few minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.nat.common import RESULTS, target_supernet, write_result
from natkit.data import load_task
from natkit.methods.nat.supernet import InPlaceEvaluator


def _clock():
    return time.perf_counter(), time.process_time()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    started = time.time()
    torch.set_num_threads(1)
    task = load_task("digits", seed=args.seed)
    net, space, nat = target_supernet(task, args.seed, warmup_epochs=float(nat_warmup()))
    ev = InPlaceEvaluator(net, space, task, n_calib=int(nat["n_calib"]), seed=args.seed)
    X = np.vstack([space.extremes(), space.sample(args.n, np.random.default_rng(args.seed))])
    for r in space.config.resolutions:  # load and resize the images once: a search caches them too
        ev.images(r)
    rows = []
    for x in X:
        # Both sides warm: one untimed run each first, then `reps` interleaved timed runs, the
        # median kept. A cold first pass pays oneDNN's primitive creation for new conv shapes,
        # and whichever side runs first pays it for the other, so cold timings compare nothing.
        w0, c0 = _clock()
        res = ev.evaluate(x)  # this subnet's first evaluation ever: the cold cost a search pays
        w1, c1 = _clock()
        cold_wall, cold_cpu = w1 - w0, c1 - c0
        arch = res.arch
        sub = ev.net.extract(arch).eval()
        imgs = ev.images(arch["resolution"])

        def plain():
            with torch.no_grad():
                for b in imgs:
                    sub(b)

        plain()
        ew, ec, pw, pc = [], [], [], []
        for _ in range(args.reps):
            w0, c0 = _clock()
            ev.evaluate(x)
            w1, c1 = _clock()
            plain()
            w2, c2 = _clock()
            ew.append(w1 - w0), ec.append(c1 - c0), pw.append(w2 - w1), pc.append(c2 - c1)
        rows.append({"genome": [int(v) for v in x], "macs": res.metrics["macs"], "eval_wall": float(np.median(ew)),
                     "eval_cpu": float(np.median(ec)), "plain_wall": float(np.median(pw)),
                     "plain_cpu": float(np.median(pc)), "eval_cold_wall": cold_wall, "eval_cold_cpu": cold_cpu,
                     "n_images": int(sum(len(b) for b in imgs))})
    ratio_cpu = np.array([r["eval_cpu"] / r["plain_cpu"] for r in rows])
    ratio_wall = np.array([r["eval_wall"] / r["plain_wall"] for r in rows])
    ratio_cold = np.array([r["eval_cold_cpu"] / r["plain_cpu"] for r in rows])
    summary = {"median_ratio_cold_cpu": float(np.median(ratio_cold)), "median_ratio_cpu": float(np.median(ratio_cpu)), "mean_ratio_cpu": float(ratio_cpu.mean()),
               "median_ratio_wall": float(np.median(ratio_wall)),
               "eval_cpu_s_mean": float(np.mean([r["eval_cpu"] for r in rows])),
               "plain_cpu_s_mean": float(np.mean([r["plain_cpu"] for r in rows])), "n": len(rows)}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["macs"] / 1e6 for r in rows], ratio_cold, label="cold evaluation, CPU time (registered)")
    ax.scatter([r["macs"] / 1e6 for r in rows], ratio_cpu, label="warm evaluation, CPU time")
    ax.scatter([r["macs"] / 1e6 for r in rows], ratio_wall, marker="x", label="wall time")
    ax.axhline(1.5, color="k", ls="--", lw=1, label="aim 1.5")
    ax.set(xlabel="subnet MMACs", ylabel="in-place evaluation / plain forward",
           title="NAT evaluation cost (BN recalibration included)")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "eval_cost.png", dpi=120)
    md = ["# NAT evaluation cost", "",
          "Registered measure: a new subnet's first (cold) evaluation against warm plain forward passes "
          "over the same images (CPU time, median over genomes); warm-vs-warm kept for reference.", "",
          "| measure | value |", "|---|---|"] + \
         [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items()]
    write_result("eval_cost", {"summary": summary, "rows": rows, "settings": vars(args)}, "\n".join(md) + "\n",
                 started)
    print("\n".join(md))


def nat_warmup():
    from natkit.methods.nat.method import load_nat_space

    return load_nat_space("nat_small")[2]["warmup_epochs"]


if __name__ == "__main__":
    main()
