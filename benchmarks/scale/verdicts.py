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
        lavg = (d.get("stamp") or {}).get("load_avg")
        idle = (f"load average {', '.join(f'{x:.1f}' for x in lavg)} at the end of the run"
                + (" (NOT idle: other jobs cap the 2-worker speed-up)" if max(lavg) > 0.5 else "")) if lavg else ""
        for cid in ("scale.throughput.two_workers", "scale.throughput.two_workers_1_8x"):
            out.append(verdict(cid, {"speedup": ratio}, source=src, data=d, n=None,
                               effect=f"{ratio:.2f}x (median of interleaved rounds "
                                      f"{', '.join(f'{x:.2f}' for x in d['speedup_per_round'])})",
                               ours=f"{two['candidates_per_min']:.1f} cand/min with 2 workers",
                               baseline=f"{one['candidates_per_min']:.1f} cand/min with 1 worker; in-process "
                                        f"{inproc['candidates_per_min']:.1f}",
                               note=idle, plot=PLOT.format("throughput")))
        pw = d.get("speedup_2_workers_vs_1_thread_worker")
        if pw is not None:
            one1 = runs["dask, 1 worker, 1 thread"]
            out.append(verdict("scale.throughput.two_workers_per_worker", {"speedup": pw}, source=src, data=d, n=None,
                               effect=f"{pw:.2f}x (median of interleaved rounds "
                                      f"{', '.join(f'{x:.2f}' for x in d['speedup_2_workers_vs_1_thread_worker_per_round'])})",
                               ours=f"{two['candidates_per_min']:.1f} cand/min with 2 workers",
                               baseline=f"{one1['candidates_per_min']:.1f} cand/min with 1 worker, 1 thread",
                               note=idle, plot=PLOT.format("throughput")))
        ms = d["dask_overhead_ms_per_candidate"]["no-op evaluator"]
        out.append(verdict("scale.throughput.overhead", {"share": ms / 1000 / med}, source=src, data=d, n=None,
                           effect=f"{ms:.1f} ms per candidate = {100 * ms / 1000 / med:.1f}% of a median evaluation "
                                  f"({med:.2f} s)", plot=PLOT.format("throughput")))
        out.append(verdict("scale.throughput.shared_once", {"shares": two["shares"]}, source=src, data=d, n=None,
                           effect=f"sent {two['shares']}x for {len(d['candidates'])} candidates "
                                  f"({d['transfer']['sent_once_per_worker_bytes'] / 1e6:.1f} MB once vs "
                                  f"{d['transfer']['if_sent_per_candidate_bytes'] / 1e6:.1f} MB per candidate)"))
        if "in_worker_slowdown" in d:  # median over rounds of the per-round ratio of medians (the registered statistic)
            w = d["in_worker_slowdown"]
            how = f"median of per-round ratios {', '.join(f'{x:.2f}' for x in d['in_worker_slowdown_per_round'])}; "
        else:  # a stored run that predates it: medians of the last round
            w = one["median_eval_s_in_worker"] / inproc["median_eval_s_in_worker"]
            how = "last round: "
        out.append(verdict("scale.throughput.in_worker", {"ratio": w}, source=src, data=d, n=None,
                           effect=f"{w:.2f}x ({how}{one['median_eval_s_in_worker']:.2f} s in the worker vs "
                                  f"{inproc['median_eval_s_in_worker']:.2f} s in-process)", note=idle,
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
