"""A cost model of one candidate evaluation, fitted to measured times, extrapolated to a cluster.

Measured: the `width` reference evaluator (train a fixed number of batches, then score the whole
validation split) on Fashion-MNIST, for candidates spanning the space's MACs range and three
validation-set sizes. Fitted by non-negative least squares (scipy):

    seconds = c0 + c_train * MACs + c_img * n_val + c_fwd * n_val * MACs

(c_train * MACs: the fixed training work; c_img: per-image transform cost; c_fwd: forward cost per
image and MAC). Checked by leave-one-out prediction against the constant (mean) model. The cluster
extrapolation uses the Dask overhead per candidate and the 1 -> 2 worker efficiency measured by
`benchmarks.scale.throughput` (run it first), assuming efficiency stays at that level as workers are added.

Run: .venv/bin/python -m benchmarks.scale.costmodel  (about 5-8 min on 2 shared cores)
Writes results/scale/cost_model.{json,md,png}; its registered verdict goes to results/scale/claims.json
(benchmarks.scale.verdicts).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from benchmarks.scale.common import ROOT, distinct_encodings, host
from natkit.core.problem import SerialRunner
from natkit.data import load_task
from natkit.measure import measure
from natkit.methods.width.space import VGGWidthSpace, WidthEvaluator
from natkit.nets import create_model
from natkit.report.provenance import stamp
from natkit.train import TrainConfig

TERMS = ["c0 (s)", "c_train (s per MAC)", "c_img (s per val image)", "c_fwd (s per val image per MAC)"]


def features(macs, n_val):
    macs, n_val = np.asarray(macs, float), np.asarray(n_val, float)
    return np.stack([np.ones_like(macs), macs, n_val, n_val * macs], axis=1)


def fit(X, y):
    # scale columns so NNLS is well conditioned, then undo the scaling
    s = np.abs(X).max(axis=0)
    s[s == 0] = 1
    coef, _ = nnls(X / s, y)
    return coef / s


def spread_by_macs(space, task, n, seed):
    """``n`` candidates at evenly spaced MACs quantiles of a random pool."""
    pool = distinct_encodings(space, 40, seed)
    macs = [measure(create_model("vgg", num_classes=task.num_classes, in_channels=task.in_channels,
                                 **space.decode(e)), space.resolution, task.in_channels)["macs"] for e in pool]
    order = np.argsort(macs)
    pick = [order[int(round(q * (len(pool) - 1)))] for q in np.linspace(0, 1, n)]
    return [pool[i] for i in pick]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "scale"))
    p.add_argument("--candidates", type=int, default=6)
    p.add_argument("--val-sizes", default="600,1800,5400", help="validation images (carved from the 60k train)")
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--max-batches", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refit", action="store_true", help="reuse the measurements in OUT/cost_model.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = VGGWidthSpace()
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=64, max_batches=args.max_batches)
    sizes = [int(v) for v in args.val_sizes.split(",")]

    rows = []
    encs = None
    prev = out / "cost_model.json"
    if args.refit:  # reuse the stored measurements, refit and re-extrapolate with the current throughput.json
        stored = json.loads(prev.read_text())
        rows, sizes = stored["measurements"], stored["setting"]["val_sizes"]
        encs = list({tuple(r["encoding"]): r["encoding"] for r in rows}.values())
    for n_val in ([] if args.refit else sizes):
        task = load_task("fashion-mnist", seed=args.seed, samples_per_class=args.samples_per_class,
                         val_fraction=n_val / 60000)
        encs = encs or spread_by_macs(space, task, args.candidates, args.seed)
        ev = WidthEvaluator(task, space, cfg, seed=args.seed)
        ev.evaluate(encs[0])  # warm-up (lazy imports, allocator), not measured
        for i, res in SerialRunner().map(ev, encs):
            rows.append({"encoding": encs[i], "n_val": len(task.val), "macs": res.metrics["macs"],
                         "params": res.metrics["params"], "seconds": res.seconds, "error": res.metrics["error"]})
            print(f"n_val {len(task.val)} macs {res.metrics['macs']:.3g}: {res.seconds:.2f} s", flush=True)

    X = features([r["macs"] for r in rows], [r["n_val"] for r in rows])
    y = np.array([r["seconds"] for r in rows])
    coef = fit(X, y)
    pred = X @ coef
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    loo, loo_const = [], []
    for k in range(len(y)):
        keep = np.arange(len(y)) != k
        c = fit(X[keep], y[keep])
        loo.append(abs(X[k] @ c - y[k]) / y[k])
        loo_const.append(abs(y[keep].mean() - y[k]) / y[k])
    mape, mape_const = float(np.mean(loo)), float(np.mean(loo_const))

    thr_path = out / "throughput.json"
    thr = json.loads(thr_path.read_text()) if thr_path.is_file() else None
    if thr:
        overhead = thr["dask_overhead_ms_per_candidate"]["no-op evaluator"] / 1000
        # parallel efficiency of 2 workers: speed-up over 1 worker / 2
        efficiency = min(1.0, thr["speedup_2_vs_1_workers"] / 2)
        # an evaluation inside a worker measured slower than in this process (see throughput.md)
        slowdown = max(1.0, thr["runs"]["dask, 1 worker"].get("median_eval_s_in_worker", 0)
                       / thr["per_candidate_s"]["median"])
        source = "measured by benchmarks.scale.throughput"
    else:
        overhead, efficiency, slowdown, source = 0.05, 1.0, 1.0, "assumed (run benchmarks.scale.throughput first)"

    def per_candidate(macs, n_val):
        return float((features([macs], [n_val]) @ coef)[0])

    med_macs = float(np.median([r["macs"] for r in rows]))
    scenarios = []
    for n_val in (1800, 12000, 60000):
        t = per_candidate(med_macs, n_val)
        for workers in (1, 2, 8, 32, 128):
            # one candidate per worker thread in flight: a generation of P takes ceil(P / W) rounds
            eff = 1.0 if workers == 1 else efficiency
            n_cand, pop = 1000, 50
            rounds = math.ceil(pop / workers) * (n_cand // pop)
            seconds = rounds * (t * slowdown / eff + overhead)
            scenarios.append({"n_val": n_val, "macs": med_macs, "workers": workers, "seconds_per_candidate": t,
                              "candidates": n_cand, "pop_size": pop, "search_hours": seconds / 3600})
    result = {
        "setting": stored["setting"] if args.refit else {"task": "fashion-mnist", "train": cfg.to_dict(),
                                                         "val_sizes": sizes, "candidates": len(encs),
                                                         "host": host()},
        "model": {"formula": "seconds = c0 + c_train*MACs + c_img*n_val + c_fwd*n_val*MACs",
                  "coefficients": dict(zip(TERMS, map(float, coef))), "r2": float(r2),
                  "loo_mean_abs_pct_error": mape, "constant_model_loo_mean_abs_pct_error": mape_const},
        "cluster": {"dask_overhead_s_per_candidate": overhead, "parallel_efficiency": efficiency,
                    "in_worker_slowdown": slowdown, "source": source,
                    "scenarios": scenarios},
        "measurements": rows,
    }
    (out / "cost_model.json").write_text(json.dumps(stamp(result), indent=2))
    plot(rows, pred, scenarios, out / "cost_model.png")
    write_md(out / "cost_model.md", result)
    if out.resolve() == (ROOT / "results" / "scale").resolve():
        from benchmarks.scale import verdicts  # the registered scale.* verdicts, judged on the files just written

        verdicts.update()
    print(json.dumps(result["model"], indent=1))
    return result


def plot(rows, pred, scenarios, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.8), dpi=120)
    y = np.array([r["seconds"] for r in rows])
    nv = np.array([r["n_val"] for r in rows])
    for i, n in enumerate(sorted(set(nv))):
        m = nv == n
        a.scatter(y[m], pred[m], s=18, color=f"C{i}", label=f"{n} val images")
    lim = [0, max(y.max(), pred.max()) * 1.1]
    a.plot(lim, lim, color="0.5", lw=1)
    a.set_xlabel("measured seconds per candidate")
    a.set_ylabel("model")
    a.set_title("cost model fit", fontsize=9)
    a.legend(fontsize=7)
    for i, n in enumerate(sorted({s["n_val"] for s in scenarios})):
        ss = [s for s in scenarios if s["n_val"] == n]
        b.plot([s["workers"] for s in ss], [s["search_hours"] for s in ss], marker="o", color=f"C{i}",
               label=f"{n} val images ({ss[0]['seconds_per_candidate']:.1f} s/cand)")
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel("Dask workers")
    b.set_ylabel("hours for 1000 candidates (pop 50)")
    b.set_title("extrapolated search time", fontsize=9)
    b.legend(fontsize=7)
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_md(path, r):
    m, c = r["model"], r["cluster"]
    lines = ["# Scale: cost model of one candidate evaluation", "",
             f"Measured on this host ({r['setting']['host']}): the `width` evaluator on Fashion-MNIST, "
             f"{r['setting']['train']['max_batches']} training batches of {r['setting']['train']['batch_size']}, "
             f"then the whole validation split; {r['setting']['candidates']} candidates x val sizes "
             f"{r['setting']['val_sizes']}.", "",
             f"`{m['formula']}`", "", "| term | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3g} |" for k, v in m["coefficients"].items()]
    lines += ["", f"R2 {m['r2']:.3f}; leave-one-out mean absolute error {100 * m['loo_mean_abs_pct_error']:.1f}% "
              f"(constant model: {100 * m['constant_model_loo_mean_abs_pct_error']:.1f}%).", "",
              f"Cluster extrapolation: Dask overhead {1000 * c['dask_overhead_s_per_candidate']:.0f} ms/candidate, "
              f"parallel efficiency {c['parallel_efficiency']:.2f}, evaluations {c['in_worker_slowdown']:.2f}x slower "
              f"inside a worker ({c['source']}); a search of 1000 candidates in generations of 50, one candidate "
              "per worker in flight, median-MACs candidate; efficiency assumed to stay at its 2-worker value.", "",
              "| val images | s/candidate | workers | hours |", "|---|---|---|---|"]
    lines += [f"| {s['n_val']} | {s['seconds_per_candidate']:.2f} | {s['workers']} | {s['search_hours']:.2f} |"
              for s in c["scenarios"]]
    lines += ["", "Beyond 50 workers a generation of 50 cannot use more workers (pymoo evaluates a generation, "
              "then breeds the next), which is why the curves flatten. Measurements under contention from other "
              "jobs on 2 shared cores: the absolute seconds are pessimistic, the shape is what the model is for.",
              "", "![cost model](cost_model.png)"]
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
