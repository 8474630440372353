"""`make bench`: every benchmark with the arguments behind the committed results, then the verdicts
and the README tables.

Each benchmark is a module run from the repository root (``python -m benchmarks.<method>.<name>``)
writing to results/<method>/. They run one after another, in the order of ``RUNS`` (the machine has 2
cores; running them side by side would only make every timing noisier). Order matters where one run
reads another's output: progressive's Fashion-MNIST runs reuse the digits choices (``--from``),
``benchmarks.tascnet.seeds`` gathers the per-seed TASCNet runs, and the verdicts
(``benchmarks.verdicts``) and tables (``benchmarks.readme_table``) come last. Every run names the files
it writes (``outputs``, globs relative to the repository root): a test checks that every file under
results/ is named by a run. ``--only nat,lda`` restricts the set; ``--dry-run`` prints the commands.
Without ``--only`` this takes many hours on 2 cores (the wall times are in each file's provenance).
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["nat", "tascnet", "progressive", "ke", "lda", "scale", "perf", "reliability", "hardware", "tabular",
          "userdata", "quick", "report"]
_FMNIST_PROG = ["--task", "fashion-mnist", "--samples-per-class", "500", "--from", "results/progressive", "--lr-here"]
_PF = "results/progressive/fashion-mnist"

# (module, arguments, files it writes): the invocations behind the committed results, in the order they must run
RUNS = [
    ("benchmarks.quick", [], ["results/quick/*", "results/quick/runs/*/*"]),
    ("benchmarks.nat.counting", [], ["results/nat/counting.*"]),
    ("benchmarks.nat.eval_cost", [], ["results/nat/eval_cost.*"]),
    ("benchmarks.nat.search", ["--seeds", "0", "1", "2", "3", "4"], ["results/nat/search.*", "results/nat/search_seeds/*"]),
    ("benchmarks.nat.surrogates", [], ["results/nat/surrogates.*", "results/nat/surrogates_seeds/*"]),
    ("benchmarks.nat.transfer", [], ["results/nat/transfer.*", "results/nat/transfer_seeds/*"]),
    ("benchmarks.tascnet.transfer", [], ["results/tascnet/transfer*", "results/tascnet/stage2_vs_l1_*.png",
                                        "results/tascnet/archive_*.sqlite"]),
    ("benchmarks.tascnet.transfer", ["--seed", "1", "--out", "results/tascnet/seeds/seed1"],
     ["results/tascnet/seeds/seed1/*"]),
    ("benchmarks.tascnet.transfer", ["--seed", "2", "--out", "results/tascnet/seeds/seed2"],
     ["results/tascnet/seeds/seed2/*"]),
    ("benchmarks.tascnet.transfer", ["--seed", "3", "--out", "results/tascnet/seeds/seed3"],
     ["results/tascnet/seeds/seed3/*"]),
    ("benchmarks.tascnet.transfer", ["--seed", "4", "--out", "results/tascnet/seeds/seed4"],
     ["results/tascnet/seeds/seed4/*"]),
    ("benchmarks.tascnet.seeds", [], ["results/tascnet/seeds.*"]),
    ("benchmarks.progressive.benchmark", ["--part", "all", "--seeds", "10"],
     ["results/progressive/lr.json", "results/progressive/criteria.*", "results/progressive/compare.*",
      "results/progressive/runs.json", "results/progressive/results.md"]),
    ("benchmarks.progressive.benchmark", ["--part", "bn", "--seeds", "10"], ["results/progressive/bn.json"]),
    # the lr choice on Fashion-MNIST's own validation split (seeds 0-2, as registered), then the comparison
    ("benchmarks.progressive.benchmark", [*_FMNIST_PROG, "--part", "all", "--seeds", "3"], [f"{_PF}/lr.json"]),
    ("benchmarks.progressive.benchmark", [*_FMNIST_PROG, "--part", "compare", "--seeds", "12"],
     [f"{_PF}/compare.*", f"{_PF}/runs.json"]),
    ("benchmarks.progressive.benchmark", [*_FMNIST_PROG, "--part", "bn", "--seeds", "6"], [f"{_PF}/bn.json"]),
    ("benchmarks.ke.small_data", [], ["results/ke/*_N6_e3.*"]),
    ("benchmarks.ke.small_data", ["--generations", "5", "--epochs", "30"], ["results/ke/*_N5_e30.*"]),
    ("benchmarks.ke.small_data", ["--generations", "10", "--epochs", "15"], ["results/ke/*_N10_e15.*"]),
    ("benchmarks.ke.small_data", ["--model", "resnet_small", "--generations", "10", "--epochs", "15"],
     ["results/ke/*_N10_e15_resnet_small.*"]),
    ("benchmarks.ke.wels", [], ["results/ke/wels.*"]),
    ("benchmarks.ke.search", [], ["results/ke/search.*", "results/ke/search_front.png", "results/ke/search_seeds/*"]),
    ("benchmarks.lda.search", [], ["results/lda/search.*"]),
    ("benchmarks.lda.compression", ["--task", "fashion-mnist", "--samples-per-class", "300", "--out",
                                    "results/lda/fashion-mnist", "--seeds", "0,1,2,3,4,5,6,7,8,9"],
     ["results/lda/fashion-mnist/*", "results/lda/fashion-mnist/seeds/*"]),
    ("benchmarks.lda.compression", ["--seeds", "0,1,2,3,4,5,6,7"],
     ["results/lda/compression.*", "results/lda/robustness.*", "results/lda/seeds/*"]),
    ("benchmarks.scale.throughput", [], ["results/scale/throughput.*", "results/scale/claims.json"]),
    ("benchmarks.scale.costmodel", [], ["results/scale/cost_model.*", "results/scale/claims.json"]),
    ("benchmarks.scale.cpucheck", [], ["results/scale/cpu_check.*"]),
    ("benchmarks.perf.throughput", ["--n-train", "1024", "--n-eval", "2048", "--rounds", "7"],
     ["results/perf/throughput.*", "results/perf/throughput-*",
                                        "results/perf/claims.json"]),
    ("benchmarks.perf.options", ["--rounds", "3", "--n-train", "512", "--n-eval", "2048"], ["results/perf/options.*"]),
    ("benchmarks.perf.cold", [], ["results/perf/cold.*"]),
    ("benchmarks.reliability.figures", [], ["results/reliability/*"]),
    ("benchmarks.hardware.latency", ["--repeats", "100", "--rounds", "60", "--per-round", "10"],
     ["results/hardware/latency.*", "results/hardware/claims.json",
                                         "results/hardware/deploy_example/*"]),
    ("benchmarks.hardware.latency", ["--scale", "deploy"], ["results/hardware/latency_deploy.*"]),
    ("benchmarks.hardware.lut_search", [], ["results/hardware/lut_search.*"]),
    ("benchmarks.hardware.int8", [], ["results/hardware/int8.*"]),
    ("benchmarks.tabular.run", [], ["results/tabular/*"]),
    ("benchmarks.userdata.run", ["--modes", "quick,default", "--jobs", "1", "--timeout", "5400"], ["results/userdata/*"]),
    ("benchmarks.verdicts", [], ["results/*/claims.json"]),
    ("benchmarks.readme_table", [], ["results/CLAIMS.md"]),
]


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ("quick" if parts[1] == "quick" else "report")


def runs(only=None) -> list:
    return [(m, a) for m, a, _ in RUNS if not only or group(m) in only]


def run_for(path: str) -> str | None:
    """The label of the run that writes ``path`` (relative to the repository root), or None."""
    for module, args, outputs in RUNS:
        if any(fnmatch.fnmatchcase(path, g) for g in outputs):
            return " ".join([module, *args])
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated groups: " + ",".join(GROUPS))
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(GROUPS):
        ap.error(f"unknown group {sorted(only - set(GROUPS))[0]!r}; known: {', '.join(GROUPS)}")
    failed = []
    for module, extra in runs(only):
        label = " ".join(["python -m", module, *extra])
        if args.dry_run:
            print(label)
            continue
        t0 = time.time()
        print(f"=== {label} ===", flush=True)
        code = subprocess.call([sys.executable, "-m", module, *extra], cwd=ROOT)
        print(f"{label}: exit {code} in {time.time() - t0:.0f} s", flush=True)
        if code:
            failed.append(label)
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
