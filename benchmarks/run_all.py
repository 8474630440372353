"""`make bench`: every claim benchmark with the arguments that produced the committed results, then
the README tables.

Each benchmark script is a standalone program writing to results/<method>/ (numbers, plots and
claims.json). They run one after another, in the order of ``RUNS`` (the machine has 2 cores; running
them side by side would only make every timing noisier). Order matters where one run reads another's
output: progressive's Fashion-MNIST runs reuse the digits choices (``--from``), ``tascnet_seeds.py``
gathers the per-seed TASCNet runs, and LDA's digits report merges the Fashion-MNIST claims, so it
runs last. ``--only nat,lda`` restricts the set; ``--dry-run`` prints the commands. Run without
``--only`` this takes many hours on 2 cores (the summed run times are in each claims.json).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GROUPS = ["nat", "tascnet", "progressive", "ke", "lda", "scale", "reliability", "perf"]
_FMNIST_PROG = ["--task", "fashion-mnist", "--samples-per-class", "500", "--from", "results/progressive", "--lr-here"]

# (script, arguments): the invocations behind the committed results, in the order they must run
RUNS = [
    ("nat_counting.py", []),
    ("nat_eval_cost.py", []),
    ("nat_search.py", []),
    ("nat_surrogates.py", []),
    ("nat_transfer.py", []),
    ("tascnet_transfer.py", []),
    ("tascnet_transfer.py", ["--seed", "1", "--out", "results/tascnet/seeds/seed1"]),
    ("tascnet_transfer.py", ["--seed", "2", "--out", "results/tascnet/seeds/seed2"]),
    ("tascnet_seeds.py", []),
    ("progressive_benchmark.py", ["--part", "all", "--seeds", "10"]),
    ("progressive_benchmark.py", ["--part", "bn", "--seeds", "10"]),
    ("progressive_benchmark.py", [*_FMNIST_PROG, "--part", "compare", "--seeds", "12"]),
    ("progressive_benchmark.py", [*_FMNIST_PROG, "--part", "bn", "--seeds", "6"]),
    ("ke_small_data.py", []),
    ("ke_small_data.py", ["--generations", "5", "--epochs", "30"]),
    ("ke_small_data.py", ["--generations", "10", "--epochs", "15"]),
    ("ke_small_data.py", ["--model", "resnet_small", "--generations", "10", "--epochs", "15"]),
    ("ke_wels.py", []),
    ("ke_search.py", []),
    ("lda_search.py", []),
    ("lda_compression.py", ["--task", "fashion-mnist", "--samples-per-class", "300", "--out",
                            "results/lda/fashion-mnist", "--seeds", "0,1,2,3,4,5,6,7,8,9"]),
    ("lda_compression.py", ["--seeds", "0,1,2,3,4,5,6,7"]),
    ("scale.throughput", []),  # a module of the benchmarks package: run with python -m benchmarks.scale.throughput
    ("scale.costmodel", []),
    ("reliability_figures.py", []),
    ("perf.throughput", []),
    ("perf.options", []),
    ("perf.cold", []),
]


def group(script: str) -> str:
    return script.replace(".", "_").split("_")[0]


def command(script: str, extra) -> list:
    if script.endswith(".py"):
        return [sys.executable, str(ROOT / script), *extra]
    return [sys.executable, "-m", f"benchmarks.{script}", *extra]


def runs(only=None) -> list:
    return [(s, a) for s, a in RUNS if not only or group(s) in only]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated method groups: " + ",".join(GROUPS))
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(GROUPS):
        ap.error(f"unknown group {sorted(only - set(GROUPS))[0]!r}; known: {', '.join(GROUPS)}")
    failed = []
    for script, extra in runs(only):
        cmd = command(script, extra)
        label = " ".join([script, *extra])
        if args.dry_run:
            print(label)
            continue
        t0 = time.time()
        print(f"=== {label} ===", flush=True)
        code = subprocess.call(cmd, cwd=ROOT.parent)
        print(f"{label}: exit {code} in {time.time() - t0:.0f} s", flush=True)
        if code:
            failed.append(label)
    if args.dry_run:
        return 0
    subprocess.call([sys.executable, str(ROOT / "readme_table.py")], cwd=ROOT.parent)
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
