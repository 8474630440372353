"""Closed-form params/MACs of NAT subnets vs the counted conv + linear MACs (``natkit.measure.count_macs``)
of the extracted subnet: equality and speed.

Setting: >= 200 random genomes of `nat_small` (28–32 px, 1 channel, 10 classes) plus the two
extremes, and 20 genomes of `nat_imagenet` (192–256 px, 3 channels, 1000 classes). The counter is timed
on the already extracted subnet (extraction not counted against it). Runs in about a minute.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.nat.common import RESULTS, write_result
from natkit.measure.counts import count_macs, count_params
from natkit.methods.nat.method import load_nat_space
from natkit.methods.nat.space import NATSpace, count_params_macs
from natkit.methods.nat.ofa_mbv3 import OFAMobileNetV3


def measure(space_name, n, num_classes, in_channels, seed):
    config, *_ = load_nat_space(space_name)
    space = NATSpace(config, num_classes=num_classes, in_channels=in_channels)
    net = OFAMobileNetV3(config, num_classes, in_channels).eval()
    X = np.vstack([space.extremes(), space.sample(n, np.random.default_rng(seed))])
    rows = []
    for x in X:
        arch = space.decode(x)
        sub = net.extract(arch)
        t0 = time.perf_counter()
        counted_macs = count_macs(sub, arch["resolution"], in_channels)
        t_counted = time.perf_counter() - t0
        t0 = time.perf_counter()
        closed = count_params_macs(arch)
        t_closed = time.perf_counter() - t0
        rows.append({"genome": [int(v) for v in x], "closed_macs": closed["macs"], "counted_macs": counted_macs,
                     "closed_params": closed["params"], "params": count_params(sub),
                     "t_counted": t_counted, "t_closed": t_closed})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--n-imagenet", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    small = measure("nat_small", args.n, 10, 1, args.seed)
    big = measure("nat_imagenet", args.n_imagenet, 1000, 3, args.seed)
    out = {}
    for name, rows in (("nat_small", small), ("nat_imagenet", big)):
        eq_m = sum(r["closed_macs"] == r["counted_macs"] for r in rows)
        eq_p = sum(r["closed_params"] == r["params"] for r in rows)
        ratio = float(np.sum([r["t_counted"] for r in rows]) / np.sum([r["t_closed"] for r in rows]))
        out[name] = {"n": len(rows), "macs_equal": eq_m, "params_equal": eq_p, "speed_ratio": ratio,
                     "counted_ms_mean": 1e3 * float(np.mean([r["t_counted"] for r in rows])),
                     "closed_ms_mean": 1e3 * float(np.mean([r["t_closed"] for r in rows])),
                     "max_abs_macs_diff": int(max(abs(r["closed_macs"] - r["counted_macs"]) for r in rows))}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for rows, label in ((small, "nat_small"), (big, "nat_imagenet")):
        axes[0].scatter([r["counted_macs"] for r in rows], [r["closed_macs"] for r in rows], s=8, label=label)
        axes[1].hist(np.log10([r["t_counted"] / r["t_closed"] for r in rows]), bins=30, alpha=0.6, label=label)
    axes[0].set(xscale="log", yscale="log", xlabel="counted MACs (extracted subnet)", ylabel="closed-form MACs",
                title="closed form vs counted")
    axes[0].legend()
    axes[1].set(xlabel="log10(counting time / closed-form time)", ylabel="genomes", title="speed-up per genome")
    axes[1].legend()
    fig.tight_layout()
    plot = RESULTS / "counting.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=120)
    s, b = out["nat_small"], out["nat_imagenet"]
    n_all = s["n"] + b["n"]
    equal_all = s["macs_equal"] + b["macs_equal"] == n_all and s["params_equal"] + b["params_equal"] == n_all
    claims = [
        {"claim": "closed-form params and MACs equal the conv + linear count of the extracted subnet",
         "setting": f"{s['n']} nat_small + {b['n']} nat_imagenet genomes (random + extremes)",
         "ours": f"{s['macs_equal'] + b['macs_equal']}/{n_all} MACs and {s['params_equal'] + b['params_equal']}/{n_all} "
                 "params equal",
         "baseline": "natkit.measure.count_macs (torch FlopCounterMode) on the extracted subnet", "holds": bool(equal_all),
         "plot": "results/nat/counting.png"},
        {"claim": "closed-form counting is at least 100x faster than counting a forward pass",
         "setting": "total time over the same genomes, nat_small (nat_imagenet in parentheses)",
         "ours": f"{s['closed_ms_mean']:.3f} ms per genome ({b['closed_ms_mean']:.3f} ms)",
         "baseline": f"counted {s['counted_ms_mean']:.1f} ms ({b['counted_ms_mean']:.1f} ms); ratio {s['speed_ratio']:.0f}x "
                     f"({b['speed_ratio']:.0f}x)",
         "holds": bool(min(s["speed_ratio"], b["speed_ratio"]) >= 100), "plot": "results/nat/counting.png"},
    ]
    md = ["# NAT counting: closed form vs counted forward", "", "| space | genomes | MACs equal | params equal | counted ms | "
          "closed ms | speed ratio |", "|---|---|---|---|---|---|---|"]
    for k, v in out.items():
        md.append(f"| {k} | {v['n']} | {v['macs_equal']} | {v['params_equal']} | {v['counted_ms_mean']:.2f} | "
                  f"{v['closed_ms_mean']:.3f} | {v['speed_ratio']:.0f}x |")
    write_result("counting", {"claims": claims, "results": out, "plot": "results/nat/counting.png"}, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
