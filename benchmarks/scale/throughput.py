"""Throughput of candidate evaluations: in-process vs 1 vs 2 local Dask workers, on the same candidates.

Real work: each candidate is a VGG from the `vgg_widths` space trained briefly on Fashion-MNIST and
scored on its validation split (the `width` reference evaluator). Each runner gets the machine's
cores: in-process and the 1-worker cluster run torch with all cores' threads, each of 2 workers with
half (``cores // workers``, what ``natkit.core.parallel.dask_runner`` sets). Also measured: the
per-candidate overhead of going through Dask (a no-op evaluator, so only the runner's round trip
remains) and the bytes of shared state sent (once per worker) against shipping it with every candidate.

The runners are timed in interleaved rounds (order rotated every round) and compared by the
median of per-round ratios. Every finished round is saved (``throughput.state.json``): after an
interruption, ``--resume`` continues with the next round under the same settings.

Run: python -m benchmarks.scale.throughput [--resume]   (about 5-10 min on 2 idle cores; ratios are
only meaningful on an idle machine: other jobs on the cores cap the 2-worker speed-up)
Writes results/scale/throughput.{json,md,png}; the registered scale.* verdicts go to results/scale/claims.json
(benchmarks.scale.verdicts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import time
from pathlib import Path

from benchmarks.perf.common import stamp, write_json
from benchmarks.scale.common import ROOT, NullEvaluator, distinct_encodings, host
from natkit.core.parallel import dask_runner, set_torch_threads, worker_threads
from natkit.core.problem import SerialRunner
from natkit.data import load_task
from natkit.methods.width.space import VGGWidthSpace, WidthEvaluator
from natkit.train import TrainConfig

NAMES = ["in-process", "dask, 1 worker", "dask, 2 workers", "dask, 1 worker, 1 thread"]
# the last arm is one worker with one core's threads: against it, 2 workers measure how well Dask scales
# out per worker (ideal 2.0x), while "dask, 1 worker" (all cores' threads) measures what 2 workers add
# over torch's own intra-op threading in one process


def timed_map(runner, evaluator, encodings):
    t0 = time.perf_counter()
    res = dict(runner.map(evaluator, encodings))
    return time.perf_counter() - t0, [res[i] for i in range(len(encodings))]


def _brief(res) -> dict:
    return {"status": res.status, "error": res.metrics.get("error"), "macs": res.metrics.get("macs"),
            "params": res.metrics.get("params"), "seconds": res.seconds}


def load_state(path: Path, fingerprint: str, resume: bool) -> dict:
    if resume and path.is_file():
        state = json.loads(path.read_text())
        if state.get("fingerprint") == fingerprint:
            return state
        print(f"{path} holds other settings: starting afresh", flush=True)
    return {"fingerprint": fingerprint, "rounds": []}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "scale"))
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--val-fraction", type=float, default=0.03, help="of Fashion-MNIST's 60k training images")
    p.add_argument("--max-batches", type=int, default=10)
    p.add_argument("--null-candidates", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cores", type=int, default=0, help="cores to share out (default: all of this machine's)")
    p.add_argument("--resume", action="store_true", help="continue after the last saved round")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t_start, load0 = time.time(), list(os.getloadavg())
    cores = args.cores or os.cpu_count() or 1
    threads = {NAMES[0]: cores, NAMES[1]: worker_threads(1, cores), NAMES[2]: worker_threads(2, cores),
               NAMES[3]: worker_threads(2, cores)}
    set_torch_threads(threads[NAMES[0]])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "rounds")}
    fingerprint = hashlib.sha256(json.dumps({**settings, "cores": cores}, sort_keys=True).encode()).hexdigest()[:16]
    state_path = out / "throughput.state.json"
    state = load_state(state_path, fingerprint, args.resume)

    task = load_task("fashion-mnist", seed=args.seed, samples_per_class=args.samples_per_class,
                     val_fraction=args.val_fraction)
    space = VGGWidthSpace()
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=64, max_batches=args.max_batches)
    ev = WidthEvaluator(task, space, cfg, seed=args.seed)
    encs = distinct_encodings(space, args.candidates, args.seed)
    null_encs = distinct_encodings(space, args.null_candidates, args.seed + 1)
    print(f"task {task.describe()['sizes']}, {len(encs)} candidates, threads {threads}, "
          f"{len(state['rounds'])} rounds already done, load {load0[0]:.1f}", flush=True)

    runners, closers, startup = {NAMES[0]: SerialRunner()}, [], {NAMES[0]: 0.0}
    for workers, name in ((1, NAMES[1]), (2, NAMES[2]), (1, NAMES[3])):
        t0 = time.perf_counter()
        runner, close = dask_runner(workers=workers, retries=1, threads=threads[name])
        closers.append(close)
        runner._share(ev)  # cluster up and the evaluator installed on every worker: one-off cost
        startup[name] = time.perf_counter() - t0
        runners[name] = runner
    null_ms, shares, transfer = {}, {}, {}
    try:
        for name in NAMES:  # warm-up: first-call imports and allocations in every process, not timed
            timed_map(runners[name], ev, encs[:2])
        for rnd in range(len(state["rounds"]), args.rounds):
            walls, briefs = {}, {}
            for name in NAMES[rnd % len(NAMES):] + NAMES[: rnd % len(NAMES)]:
                walls[name], res = timed_map(runners[name], ev, encs)
                briefs[name] = [_brief(r) for r in res]
            state["rounds"].append({"walls": walls, "results": briefs, "load_avg": list(os.getloadavg())})
            write_json(state_path, state)
            print(f"round {rnd}: " + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items())
                  + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        for name in NAMES:
            if name != NAMES[0]:
                shares[name] = runners[name].shares  # before the no-op evaluator below is shared too
                runners[name]._share(NullEvaluator())
            t_null, _ = timed_map(runners[name], NullEvaluator(), null_encs)
            null_ms[name] = 1000 * t_null / len(null_encs)
        blob = len(pickle.dumps(ev, protocol=pickle.HIGHEST_PROTOCOL))
        # a result carries the trained candidate back (kept for export / the test report)
        _, res = timed_map(SerialRunner(), ev, encs[:3])
        per_task = len(pickle.dumps(encs[0])) + int(statistics.median(len(pickle.dumps(r)) for r in res))
        transfer = {"evaluator_bytes": blob, "sent_once_per_worker_bytes": blob * 2,
                    "if_sent_per_candidate_bytes": blob * len(encs), "per_task_bytes": per_task}
    finally:
        for close in closers:
            close()
    return report(out, args, state, task, cfg, encs, null_encs, threads, startup, null_ms, shares, transfer,
                  t_start, load0)


def report(out, args, state, task, cfg, encs, null_encs, threads, startup, null_ms, shares, transfer, t_start,
           load0):
    n, rounds = len(encs), state["rounds"]
    rows = {}
    for name in NAMES:
        walls = [r["walls"][name] for r in rounds]
        last = rounds[-1]["results"][name]
        first = rounds[-1]["results"][NAMES[0]]
        rows[name] = {"threads": threads[name], "walls": walls, "wall_s": statistics.median(walls),
                      "startup_s": startup[name], "null_per_candidate_ms": null_ms[name],
                      "median_eval_s_in_worker": statistics.median(
                          x["seconds"] for r in rounds for x in r["results"][name]),
                      "identical_results": all(a["status"] == b["status"] == "ok" and a["error"] == b["error"]
                                               and a["macs"] == b["macs"] for a, b in zip(last, first))}
        if name in shares:
            rows[name]["shares"] = shares[name]
        rows[name]["candidates_per_min"] = 60 * n / rows[name]["wall_s"]
    speedups = [r["walls"][NAMES[1]] / r["walls"][NAMES[2]] for r in rounds]
    per_worker = [r["walls"][NAMES[3]] / r["walls"][NAMES[2]] for r in rounds if NAMES[3] in r["walls"]]
    # evaluator's own seconds, per round: median over candidates in the 1-worker cluster / in-process
    slowdowns = [statistics.median(x["seconds"] for x in r["results"][NAMES[1]])
                 / statistics.median(x["seconds"] for x in r["results"][NAMES[0]]) for r in rounds]
    ratio, slowdown = statistics.median(speedups), statistics.median(slowdowns)
    per_cand = [x["seconds"] for r in rounds for x in r["results"][NAMES[0]]]
    overhead_ms = null_ms[NAMES[1]] - null_ms[NAMES[0]]
    st = stamp(t_start)
    result = {
        "setting": {"task": task.describe(), "candidates": n, "train": cfg.to_dict(), "space": "vgg_widths (6 layers)",
                    "null_candidates": len(null_encs), "threads": threads, "rounds": len(rounds), "host": host()},
        "runs": rows, "speedup_2_vs_1_workers": ratio, "speedup_per_round": speedups,
        "speedup_2_workers_vs_1_thread_worker": statistics.median(per_worker) if per_worker else None,
        "speedup_2_workers_vs_1_thread_worker_per_round": per_worker,
        "in_worker_slowdown": slowdown, "in_worker_slowdown_per_round": slowdowns,
        "per_candidate_s": {"median": statistics.median(per_cand), "min": min(per_cand), "max": max(per_cand)},
        "dask_overhead_ms_per_candidate": {"no-op evaluator": overhead_ms, "real evaluator (wall difference)":
                                           1000 * (rows[NAMES[1]]["wall_s"] - rows[NAMES[0]]["wall_s"]) / n},
        "transfer": transfer, "load_avg_start": load0, "load_avg_per_round": [r["load_avg"] for r in rounds],
        "stamp": st,
        "candidates": [{"encoding": e, **x} for e, x in zip(encs, rounds[-1]["results"][NAMES[0]])],
    }
    write_json(out / "throughput.json", result)
    load = st["load_avg"][0]
    plot_throughput(rows, overhead_ms, out / "throughput.png", n, load)
    write_md(out / "throughput.md", result)

    if out.resolve() == (ROOT / "results" / "scale").resolve():
        # the registered verdicts (benchmarks/claims.toml, scale.*), judged on the files just written
        from benchmarks.scale import verdicts

        verdicts.update()
    print(json.dumps({"speedup_2_vs_1_workers": ratio, "in_worker_slowdown": slowdown,
                      "load_avg": st["load_avg"]}, indent=1))
    return result


def plot_throughput(rows, overhead_ms, path, n, load):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    names = list(rows)
    vals = [rows[k]["candidates_per_min"] for k in names]
    a.bar(names, vals, color=["0.6", "C0", "C1", "C2"][: len(names)])
    for i, v in enumerate(vals):
        a.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    a.set_ylabel("candidates / minute")
    a.set_title(f"same {n} candidates (load avg {load:.1f} on 2 cores)", fontsize=9)
    a.tick_params(axis="x", labelsize=8)
    nv = [rows[k]["null_per_candidate_ms"] for k in names]
    b.bar(names, nv, color=["0.6", "C0", "C1", "C2"][: len(names)])
    for i, v in enumerate(nv):
        b.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    b.set_ylabel("ms per no-op candidate")
    b.set_title("runner overhead per candidate", fontsize=9)
    b.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_md(path, r):
    lines = ["# Scale: throughput of candidate evaluations", "",
             f"Setting: {r['setting']['candidates']} candidates of the `vgg_widths` space, Fashion-MNIST "
             f"(train {r['setting']['task']['sizes']['train']}, val {r['setting']['task']['sizes']['val']} images), "
             f"training {r['setting']['train']['max_batches']} batches of {r['setting']['train']['batch_size']}; "
             f"host {r['setting']['host']}.", "",
             "| runner | median wall (s) | candidates/min | start-up (s) | no-op overhead (ms/cand) | identical results |",
             "|---|---|---|---|---|---|"]
    for k, v in r["runs"].items():
        lines.append(f"| {k} | {v['wall_s']:.1f} | {v['candidates_per_min']:.1f} | {v['startup_s']:.1f} | "
                     f"{v['null_per_candidate_ms']:.3f} | {v.get('identical_results', '-')} |")
    t = r["transfer"]
    pw = r.get("speedup_2_workers_vs_1_thread_worker")
    lines += ["", f"2 vs 1 workers: **{r['speedup_2_vs_1_workers']:.2f}x** against one worker with all cores' threads"
              + (f", **{pw:.2f}x** against one worker with one core's threads (what scaling out per worker gives; "
                 "ideal 2.0x)" if pw else "") + ". Per-candidate Dask overhead: "
              f"{r['dask_overhead_ms_per_candidate']['no-op evaluator']:.1f} ms (no-op evaluator), "
              f"{r['dask_overhead_ms_per_candidate']['real evaluator (wall difference)']:.0f} ms (real evaluator, "
              f"wall difference; includes contention noise). Median evaluation {r['per_candidate_s']['median']:.2f} s.",
              "", f"Shared state: evaluator pickle {t['evaluator_bytes'] / 1e6:.2f} MB, sent once per worker "
              f"({t['sent_once_per_worker_bytes'] / 1e6:.2f} MB in all) instead of "
              f"{t['if_sent_per_candidate_bytes'] / 1e6:.1f} MB with every candidate; each task carries "
              f"~{t['per_task_bytes'] / 1e3:.0f} kB (the encoding out; the result with the trained candidate back, "
              "kept for export). The evaluator's size is mostly the task's tensors (the test split included).", "",
              f"Median evaluation timed inside the evaluator: {r['per_candidate_s']['median']:.2f} s in-process, "
              f"{r['runs']['dask, 1 worker']['median_eval_s_in_worker']:.2f} s inside a Dask worker "
              f"({r['in_worker_slowdown']:.2f}x, median of per-round ratios). Threads per runner: "
              f"{r['setting']['threads']} (each worker gets cores // workers). Load average during the run: "
              f"{', '.join(f'{x:.1f}' for x in r['stamp']['load_avg'])}.", "",
               "![throughput](throughput.png)"]
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
