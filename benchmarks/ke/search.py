"""KE as a multi-objective search (split rate, generations, epochs per generation) against the
reference `width` search (NSGA-II over a VGG's per-layer widths, each trained from scratch), on
`digits` at its native 8 px, both through the `natkit` command into one archive per seed.

Budget per seed: KE runs first (NSGA-II, pop 8, 4 generations); the `width` search then gets at least
the same number of training epochs: its candidates train 3 epochs each (pop 8), and it runs the fewest
generations whose real evaluations reach ceil(KE epochs / 3). NSGA-II re-proposes architectures it has
evaluated (natkit answers those from the archive without training), so the benchmark starts at
ceil(KE epochs / 24) generations and reruns the width search from scratch with one generation more until
it has trained enough; every attempt is recorded (``width_attempts``). Width gets up to one generation
(24 epochs) more than KE, never less. Compared per seed: each method's validation front (error vs
MACs) and its hypervolume on the seed's fixed bounds (error [0, 1], MACs [0, the largest either search
evaluated], reference point 1.1); over seeds, the paired HV difference KE minus width with its 95%
t interval (registered claim ``ke.search_vs_width``). About 2 minutes per seed on one core.

Each seed writes results/ke/search_seeds/seed<N>.json and its archive seed<N>.sqlite as it finishes;
``--resume`` keeps the seeds already written with the same settings. The summary goes to
results/ke/search.json / search.md; search_front.png plots the first seed's archive.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from benchmarks.ke.small_data import write_claims
from benchmarks.perf.common import write_json
from natkit.core.archive import Archive
from natkit.core.search import hypervolume
from natkit.report import stats
from natkit.report.plots import plot_front
from natkit.report.provenance import provenance, stamp

NATKIT = [sys.executable, "-m", "natkit.cli"]
SETTINGS = ("task", "pop", "generations", "max_ke_generations", "max_epochs")
WIDTH_EPOCHS_EACH = 3


def natkit(*args):
    t0 = time.time()
    subprocess.run([*NATKIT, *map(str, args)], check=True, cwd=ROOT)
    return time.time() - t0


def run_seed(args, seed: int, archive_path: Path) -> dict:
    """Both searches of one seed into ``archive_path`` (replaced); their fronts, epochs and HVs."""
    started = time.time()
    for p in (archive_path, Path(f"{archive_path}-wal"), Path(f"{archive_path}-shm")):
        p.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ke_search_"))
    ke_archive = work / "ke.sqlite"
    common = ["--task", args.task, "--seed", seed, "--objectives", "error,macs", "--threads", "1", "-q"]
    try:
        t_ke = natkit("search", "ke", "--out", work / "ke", "--archive", ke_archive, "--pop-size", args.pop,
                      "--generations", args.generations, "--option", f"max_generations={args.max_ke_generations}",
                      "--option", "epochs_min=1", "--option", f"epochs_max={args.max_epochs}", *common)
        ke_run = json.loads((work / "ke" / "run.json").read_text())
        ke_epochs = int(ke_run["stats"]["train_epochs"])
        # the width space at the task's own resolution (the shipped file is for 28-32 px)
        space_src = (ROOT / "natkit" / "search_spaces" / "vgg_widths.toml").read_text()
        space_file = work / "vgg_widths_8px.toml"
        space_file.write_text(space_src.replace("resolution = 28", "resolution = 8"))
        # width gets at least KE's epochs in real training: NSGA-II re-proposes architectures it has evaluated
        # (natkit answers those from the archive, no training), so a fixed generation count can fall short.
        # The fewest generations whose real evaluations reach KE's epochs, each attempt a fresh search.
        need = math.ceil(ke_epochs / WIDTH_EPOCHS_EACH)
        width_gens, attempts = max(1, math.ceil(need / args.pop)), []
        while True:
            for p in (archive_path, Path(f"{archive_path}-wal"), Path(f"{archive_path}-shm")):
                p.unlink(missing_ok=True)
            for suffix in ("", "-wal"):
                if Path(f"{ke_archive}{suffix}").is_file():
                    shutil.copyfile(f"{ke_archive}{suffix}", f"{archive_path}{suffix}")
            out_w = work / f"width_g{width_gens}"
            t_w = natkit("search", "width", "--out", out_w, "--archive", archive_path, "--pop-size", args.pop,
                         "--generations", width_gens, "--space", space_file, *common)
            real = int(json.loads((out_w / "run.json").read_text())["stats"]["real_evaluations"])
            attempts.append({"generations": width_gens, "real_evaluations": real, "seconds": round(t_w, 1)})
            if real >= need:
                break
            width_gens += 1
        width_epochs = real * WIDTH_EPOCHS_EACH
    finally:
        shutil.rmtree(work, ignore_errors=True)

    archive = Archive(archive_path)
    try:
        cands = archive.candidates(status="ok")
        bounds = [(0.0, 1.0), (0.0, float(max(c.macs for c in cands)))]
        result = {"seed": seed, "task": args.task, "settings": {k: getattr(args, k) for k in SETTINGS},
                  "bounds": bounds, "width_attempts": attempts, "methods": {}}
        for method, epochs, secs in (("ke", ke_epochs, t_ke), ("width", width_epochs, t_w)):
            front = archive.front(("error", "macs"), method=method)
            F = np.array([[c.error, c.macs] for c in front], dtype=float)
            result["methods"][method] = {
                "train_epochs": epochs, "seconds": secs, "candidates": len(archive.candidates(method=method)),
                "hv": hypervolume(F, bounds),
                "front": [{"id": c.id, "error": c.error, "macs": c.macs, "params": c.params,
                           "test_error": c.test_error, "encoding": c.encoding, "variant": c.extra.get("variant"),
                           "ke_generation": c.extra.get("ke_generation")} for c in sorted(front, key=lambda c: c.macs)]}
    finally:
        archive.close()
    result["provenance"] = provenance(started)
    return result


def reusable(path: Path, args) -> dict | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    same = data.get("settings") == {k: getattr(args, k) for k in SETTINGS}
    return data if same and "provenance" in data and Path(path.with_suffix(".sqlite")).is_file() else None


def summarise(runs: list[dict], out: Path, started: float) -> dict:
    hv = {m: [r["methods"][m]["hv"] for r in runs] for m in ("ke", "width")}
    p = stats.paired(hv["ke"], hv["width"])
    result = {"task": runs[0]["task"], "settings": runs[0]["settings"], "seeds": [r["seed"] for r in runs],
              "hv_diff": p.as_dict(), "runs": runs}
    (out / "search.json").write_text(json.dumps(stamp(result, started, derived_from="results/ke/search_seeds/seed*.json"),
                                                indent=2, default=str))
    lines = [f"# KE search vs width search on {result['task']}, seeds {result['seeds']}", "",
             "HV on validation error x MACs, each seed's fixed bounds (error [0, 1], MACs [0, the largest either "
             "search evaluated], reference point 1.1). KE minus width, paired over seeds: "
             f"{p.fmt(digits=4, unit='')} (95% t interval).", "",
             "| seed | method | training epochs | candidates | HV | front (MACs: val error / test error) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        for m, v in r["methods"].items():
            pts = "; ".join(f"{f['macs']:,.0f}: {f['error']:.3f}/" + (f"{f['test_error']:.3f}" if f["test_error"]
                            is not None else "-") + (f" ({f['variant']} g{f['ke_generation']})" if f["variant"] else "")
                            for f in v["front"])
            lines.append(f"| {r['seed']} | {m} | {v['train_epochs']} | {v['candidates']} | {v['hv']:.4f} | {pts} |")
    lines += ["", "Width attempts per seed (generations: real evaluations; the last is the one compared): " +
              "; ".join(f"seed {r['seed']}: " + ", ".join(f"{a['generations']}: {a['real_evaluations']}"
                                                       for a in r.get("width_attempts", [])) for r in runs) + "."]
    (out / "search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "ke"))
    p.add_argument("--task", default="digits")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--pop", type=int, default=8)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--max-ke-generations", type=int, default=4)
    p.add_argument("--max-epochs", type=int, default=4)
    p.add_argument("--resume", action="store_true",
                   help="keep the per-seed files already written with the same settings, run only the missing seeds")
    args = p.parse_args(argv)
    started = time.time()
    out = Path(args.out)
    per_seed = out / "search_seeds"
    per_seed.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        path = per_seed / f"seed{seed}.json"
        data = reusable(path, args) if args.resume else None
        if data is None:
            data = run_seed(args, seed, per_seed / f"seed{seed}.sqlite")
            write_json(path, data)
        else:
            print(f"seed {seed}: reusing {path} ({data['provenance']['commit'][:7]})", flush=True)
        runs.append(data)
    first = Archive(per_seed / f"seed{args.seeds[0]}.sqlite")
    try:
        plot_front(first, out / "search_front.png", methods=["ke", "width"],
                   title=f"{args.task}, seed {args.seeds[0]}: KE slim/dense networks vs width search")
    finally:
        first.close()
    summarise(runs, out, started)
    write_claims(out)


if __name__ == "__main__":
    main()
