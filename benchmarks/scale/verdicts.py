"""The scale benchmarks' verdicts (registered ``scale.*``), from results/scale/throughput.json and cost_model.json."""

from __future__ import annotations

from benchmarks.verdicts import load, update as _update, verdict

PLOT = "results/scale/{}.png"


def derive() -> list:
    out = []
    src = "results/scale/throughput.json"
    d = load(src)
    if d:
        runs = d["runs"]
        two, one, inproc = runs["dask, 2 workers"], runs["dask, 1 worker"], runs["in-process"]
        med = d["per_candidate_s"]["median"]
        ratio = d["speedup_2_vs_1_workers"]
        out.append(verdict("scale.throughput.two_workers", {"speedup": ratio}, source=src, data=d, n=None,
                           effect=f"{ratio:.2f}x (median of interleaved rounds "
                                  f"{', '.join(f'{x:.2f}' for x in d['speedup_per_round'])})",
                           plot=PLOT.format("throughput")))
        ms = d["dask_overhead_ms_per_candidate"]["no-op evaluator"]
        out.append(verdict("scale.throughput.overhead", {"share": ms / 1000 / med}, source=src, data=d, n=None,
                           effect=f"{ms:.1f} ms per candidate = {100 * ms / 1000 / med:.1f}% of a median evaluation "
                                  f"({med:.2f} s)", plot=PLOT.format("throughput")))
        out.append(verdict("scale.throughput.shared_once", {"shares": two["shares"]}, source=src, data=d, n=None,
                           effect=f"sent {two['shares']}x for {len(d['candidates'])} candidates "
                                  f"({d['transfer']['sent_once_per_worker_bytes'] / 1e6:.1f} MB once vs "
                                  f"{d['transfer']['if_sent_per_candidate_bytes'] / 1e6:.1f} MB per candidate)"))
        w = one["median_eval_s_in_worker"] / inproc["median_eval_s_in_worker"]
        out.append(verdict("scale.throughput.in_worker", {"ratio": w}, source=src, data=d, n=None,
                           effect=f"{w:.2f}x ({one['median_eval_s_in_worker']:.2f} s in the worker vs "
                                  f"{inproc['median_eval_s_in_worker']:.2f} s in-process)",
                           plot=PLOT.format("throughput")))
    src = "results/scale/cost_model.json"
    d = load(src)
    if d:
        m = d["model"]
        out.append(verdict("scale.costmodel.linear", {"r2": m["r2"], "loo_error": m["loo_mean_abs_pct_error"]},
                           source=src, data=d, n=None,
                           effect=f"R2 {m['r2']:.2f}, leave-one-out mean abs error {100 * m['loo_mean_abs_pct_error']:.0f}%",
                           plot=PLOT.format("cost_model")))
    return out


def update():
    return _update("scale", derive())
