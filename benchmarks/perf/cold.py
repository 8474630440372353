"""First-run (cold) costs against warm runs: what a user pays once, before the pretraining caches fill.

For each method, the same ``natkit search METHOD --quick`` runs twice in fresh processes: first with an
empty ``NATKIT_CACHE`` (cold: NAT pretrains its supernet on Fashion-MNIST, LDA its source network),
then again with the cache that run filled (warm). The difference is the first-run cost; the runs'
own records (run.json) say which cached artefact was built and how long it took.

Run: python -m benchmarks.perf.cold [--methods nat,lda]   (about 8 min on 2 idle cores)
Writes results/perf/cold.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.perf.common import ROOT, stamp, write_json


def run_search(method: str, out: Path, cache: Path, threads: int, seed: int) -> dict:
    env = {**os.environ, "NATKIT_CACHE": str(cache), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "natkit.cli", "search", method, "--task", "digits", "--source", "fashion-mnist",
           "--quick", "--seed", str(seed), "--threads", str(threads), "--out", str(out), "-q"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    code = subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    stats = run.get("stats", {})
    cached = {}
    if "supernet" in stats:
        cached["nat supernet"] = {k: stats["supernet"].get(k) for k in ("cached", "seconds", "path")}
    for key in ("base", "source"):  # LDA records its source pretraining under the base model's info
        src = stats.get(key, {}).get("source") if isinstance(stats.get(key), dict) else None
        if src:
            cached["source network"] = src
    return {"wall_s": round(wall, 1), "exit_code": code, "elapsed_in_run_s": run.get("elapsed_s"),
            "load_avg_1min_at_start": load, "cache_files": sorted(p.name for p in cache.glob("*.safetensors")),
            "artefacts": cached}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="nat,lda")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: what each `make demo` lane uses)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    args = ap.parse_args(argv)
    t_start = time.time()
    out = Path(args.out)
    path = out / "cold.json"
    methods = {}  # only what this run measured: its stamp covers every row (no rows kept from older runs)
    with tempfile.TemporaryDirectory(prefix="natkit-cold-") as tmp:
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            cache = Path(tmp) / f"cache-{method}"
            cache.mkdir()
            cold = run_search(method, Path(tmp) / f"{method}-cold", cache, args.threads, args.seed)
            warm = run_search(method, Path(tmp) / f"{method}-warm", cache, args.threads, args.seed)
            methods[method] = {"cold": cold, "warm": warm, "first_run_cost_s": round(cold["wall_s"] - warm["wall_s"], 1)}
            print(f"{method}: cold {cold['wall_s']} s, warm {warm['wall_s']} s, first-run cost "
                  f"{methods[method]['first_run_cost_s']} s", flush=True)
            data = {"setting": {"task": "digits", "source": "fashion-mnist", "quick": True, "threads": args.threads,
                                "seed": args.seed},
                    "methods": methods, "stamp": stamp(t_start)}
            write_json(path, data)
    write_md(out / "cold.md", data)
    return data


def write_md(path: Path, data):
    lines = ["# First-run (cold) costs against warm runs", "",
             f"`natkit search METHOD --task digits --source fashion-mnist --quick`, {data['setting']['threads']} torch "
             "thread(s); cold = empty NATKIT_CACHE, warm = the cache the cold run filled. Each row was timed in a "
             "fresh process; load average (1 min) at each start is given because the machine was shared.", "",
             "| method | cold (s) | warm (s) | first-run cost (s) | built once | load at cold / warm start |",
             "|---|---|---|---|---|---|"]
    for m, r in data["methods"].items():
        built = "; ".join(f"{k}: {v.get('seconds')} s" for k, v in r["cold"]["artefacts"].items()) or "-"
        lines.append(f"| {m} | {r['cold']['wall_s']} | {r['warm']['wall_s']} | {r['first_run_cost_s']} | {built} | "
                     f"{r['cold']['load_avg_1min_at_start']:.1f} / {r['warm']['load_avg_1min_at_start']:.1f} |")
    st = data["stamp"]
    lines += ["", f"Command: `{st['command']}`; commit {st['commit'][:10]}{' (dirty)' if st['dirty'] else ''}; "
              f"load average at the end {', '.join(f'{x:.1f}' for x in st['load_avg'])} on {st['cpu']['count']} cores."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
