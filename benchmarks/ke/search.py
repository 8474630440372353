"""KE as a multi-objective search (split rate, generations, epochs per generation) against the
reference `width` search (NSGA-II over a VGG's per-layer widths, each trained from scratch), on
`digits` at its native 8 px, both through the `natkit` command into one archive.

Budget: KE runs first (NSGA-II, pop 8, 4 generations); the `width` search then gets the same number of
training epochs (its candidates train 3 epochs each, so pop 8 and as many generations as that buys).
Compared: each method's val front (error vs MACs), hypervolume on the same fixed bounds, and the test
error of the front members. ~5-8 minutes on one contended core.
Writes results/ke/search.json, results/ke/search.md, results/ke/search_front.png.
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
from natkit.core.archive import Archive
from natkit.core.search import hypervolume
from natkit.report.plots import plot_front
from natkit.report.provenance import stamp

NATKIT = [sys.executable, "-m", "natkit.cli"]


def natkit(*args):
    t0 = time.time()
    subprocess.run([*NATKIT, *map(str, args)], check=True, cwd=ROOT)
    return time.time() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "ke"))
    p.add_argument("--task", default="digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pop", type=int, default=8)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--max-ke-generations", type=int, default=4)
    p.add_argument("--max-epochs", type=int, default=4)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ke_search_"))
    archive_path = work / "archive.sqlite"
    common = ["--task", args.task, "--archive", archive_path, "--seed", args.seed, "--objectives", "error,macs",
              "--threads", "1", "-q"]
    t_ke = natkit("search", "ke", "--out", work / "ke", "--pop-size", args.pop, "--generations", args.generations,
                  "--option", f"max_generations={args.max_ke_generations}", "--option", "epochs_min=1",
                  "--option", f"epochs_max={args.max_epochs}", *common)
    ke_run = json.loads((work / "ke" / "run.json").read_text())
    ke_epochs = int(ke_run["stats"]["train_epochs"])
    # the width space at the task's own resolution (the shipped file is for 28-32 px)
    space_src = (ROOT / "natkit" / "search_spaces" / "vgg_widths.toml").read_text()
    space_file = work / "vgg_widths_8px.toml"
    space_file.write_text(space_src.replace("resolution = 28", "resolution = 8"))
    width_epochs_each = 3
    width_gens = max(1, math.ceil(ke_epochs / (width_epochs_each * args.pop)))
    t_w = natkit("search", "width", "--out", work / "width", "--pop-size", args.pop, "--generations", width_gens,
                 "--space", space_file, *common)
    width_run = json.loads((work / "width" / "run.json").read_text())
    width_epochs = int(width_run["stats"]["real_evaluations"]) * width_epochs_each

    archive = Archive(archive_path)
    cands = archive.candidates(status="ok")
    max_macs = max(c.macs for c in cands)
    bounds = [(0.0, 1.0), (0.0, float(max_macs))]
    result = {"task": args.task, "settings": vars(args), "bounds": bounds, "methods": {}}
    for method, epochs, secs in (("ke", ke_epochs, t_ke), ("width", width_epochs, t_w)):
        front = archive.front(("error", "macs"), method=method)
        F = np.array([[c.error, c.macs] for c in front], dtype=float)
        result["methods"][method] = {
            "train_epochs": epochs, "seconds": secs, "candidates": len(archive.candidates(method=method)),
            "hv": hypervolume(F, bounds),
            "front": [{"id": c.id, "error": c.error, "macs": c.macs, "params": c.params, "test_error": c.test_error,
                       "encoding": c.encoding, "variant": c.extra.get("variant"),
                       "ke_generation": c.extra.get("ke_generation")} for c in sorted(front, key=lambda c: c.macs)]}
    plot_front(archive, out / "search_front.png", methods=["ke", "width"],
               title=f"{args.task}: KE slim/dense networks vs width search (epochs in search.md)")
    (out / "search.json").write_text(json.dumps(stamp(result), indent=2, default=str))
    lines = [f"# KE search vs width search on {args.task} (HV on error x MACs, same fixed bounds)", "",
             "| method | training epochs | candidates | HV | front (MACs: val error / test error) |", "|---|---|---|---|---|"]
    for m, r in result["methods"].items():
        pts = "; ".join(f"{f['macs']:,.0f}: {f['error']:.3f}/" + (f"{f['test_error']:.3f}" if f["test_error"]
                        is not None else "-") + (f" ({f['variant']} g{f['ke_generation']})" if f["variant"] else "")
                        for f in r["front"])
        lines.append(f"| {m} | {r['train_epochs']} | {r['candidates']} | {r['hv']:.4f} | {pts} |")
    (out / "search.md").write_text("\n".join(lines) + "\n")
    write_claims(out)
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
