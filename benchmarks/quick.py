"""The quick end-to-end benchmark behind `make demo`.

Run as ``python -m benchmarks.quick``. Runs every method and the two reference searches with --quick settings on
--source fashion-mnist --task digits into ONE task archive, then writes results/quick/:
archive.sqlite, front.png (error vs MACs, one colour per method, combined front), hv.png,
summary.md and timing.json.

The machine's cores are used by running the searches in ``--jobs`` lanes side by side (separate
processes, one torch thread each by default, all writing to the one archive): every method's
settings and seed are those of a sequential run, so its results are the same; only the wall time
changes. NAT (its supernet pretraining dominates) gets a lane of its own; the searches that share the
pretrained source VGG run one after another in the other lane, so it is trained once. Each search
shows a progress line on the terminal (evaluations, best validation error, elapsed, ETA).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ALL = ["width", "random", "nat", "tascnet", "progressive", "ke", "lda"]
# Lanes for --jobs 2, balanced on the seconds each search took on 2 idle cores (results/quick/timing.json)
LANES = [["nat"], ["width", "random", "tascnet", "progressive", "ke", "lda"]]


def lanes_for(methods: list[str], jobs: int) -> list[list[str]]:
    if jobs <= 1:
        return [methods]
    lanes = [[m for m in lane if m in methods] for lane in LANES]
    rest = [m for m in methods if not any(m in lane for lane in LANES)]
    lanes[-1] += rest
    lanes = [lane for lane in lanes if lane]
    while len(lanes) > jobs:  # fewer lanes than LANES: merge the last two
        lanes[-2] += lanes.pop()
    return lanes


def run_methods(methods, out: Path, seed: int) -> dict:
    """Run ``methods`` one after another in this process; returns their timing."""
    from natkit.cli import main as natkit

    archive_path = out / "archive.sqlite"
    timing = {}
    for method in methods:
        t0 = time.time()
        code = natkit(["search", method, "--task", "digits", "--source", "fashion-mnist", "--out",
                       str(out / "runs" / method), "--archive", str(archive_path), "--quick", "--seed",
                       str(seed), "-q"])
        timing[method] = {"seconds": round(time.time() - t0, 1), "exit_code": code}
        print(f"{method}: exit {code}, {timing[method]['seconds']} s", flush=True)
    return timing


def main(argv=None) -> int:
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/quick")
    ap.add_argument("--methods", default=",".join(ALL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep an existing archive (default: start afresh)")
    ap.add_argument("--jobs", type=int, default=min(2, cores), help="searches run side by side (default: "
                    "2 on a machine with 2 or more cores)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per lane (default: cores // jobs)")
    ap.add_argument("--lane", action="store_true", help=argparse.SUPPRESS)  # internal: one lane's process
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite summary.md/json and the plots from the existing archive, run nothing")
    args = ap.parse_args(argv)
    import torch

    threads = args.threads or max(1, cores // max(1, args.jobs))
    torch.set_num_threads(threads)
    out = Path(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.lane:
        timing = run_methods(methods, out, args.seed)
        (out / f"timing.lane-{os.getpid()}.json").write_text(json.dumps(timing))
        return 0

    from natkit.core.archive import Archive
    from natkit.report.provenance import provenance
    from natkit.report.summary import write_report

    out = Path(args.out)
    if args.report_only:
        summary = write_report(Archive(out / "archive.sqlite"), out, provenance=provenance(
            time.time()) | {"derived_from": str(out / "archive.sqlite"), "runs_predate_provenance": True,
                            "note": "report regenerated from the committed archive; the searches ran earlier "
                            "(timing.json)"})
        print(summary.read_text())
        return 0
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("NATKIT_CACHE") or Path.home() / ".cache" / "natkit")
    cache_empty = not any(cache.glob("*.safetensors")) if cache.is_dir() else True
    t_all = time.time()
    lanes = lanes_for(methods, args.jobs)
    if len(lanes) == 1:
        timing = run_methods(methods, out, args.seed)
    else:
        print(f"{len(lanes)} lanes side by side, {threads} torch thread(s) each: "
              + " | ".join(", ".join(lane) for lane in lanes), flush=True)
        procs = []
        for i, lane in enumerate(lanes):
            env = {**os.environ, "NATKIT_PROGRESS_POSITION": str(2 * i)}  # a search line + a training line
            cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--methods", ",".join(lane),
                   "--seed", str(args.seed), "--threads", str(threads), "--keep", "--lane"]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
        timing = {}
        for f in sorted(out.glob("timing.lane-*.json")):
            timing.update(json.loads(f.read_text()))
            f.unlink()
        for lane, code in zip(lanes, codes):
            for m in lane:
                timing.setdefault(m, {"seconds": None, "exit_code": code or 1})
        timing = {m: timing[m] for m in methods}
    archive = Archive(archive_path := out / "archive.sqlite")
    summary = write_report(archive, out, provenance=provenance(t_all))
    elapsed = time.time() - t_all
    (out / "timing.json").write_text(json.dumps({
        "total_seconds": round(elapsed, 1), "methods": timing, "jobs": len(lanes), "lanes": lanes,
        "threads_per_lane": threads, "cores": cores, "load_avg_end": list(os.getloadavg()),
        "cache": str(cache), "cache_empty_at_start": cache_empty, "provenance": provenance(t_all)}, indent=2))
    print(summary.read_text())
    print(f"quick benchmark: {elapsed / 60:.1f} min in all; results in {out}/ (archive {archive_path})")
    return 0 if all(t["exit_code"] == 0 for t in timing.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
