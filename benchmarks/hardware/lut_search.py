"""A NAT search under a published device latency table: OFA/NSGANetV2's Intel i7-8700K look-up table.

The table (``natkit/search_spaces/tables/i7-8700K_lut.yaml``, Apache-2.0) times every layer of the OFA
MobileNetV3 space on an i7-8700K, for 3-channel inputs of 96-256 px. natkit predicts a NAT subnet's
latency by summing its layers' entries, so a search can take ``latency_ms`` on that CPU as an objective
and a budget without the CPU. This benchmark runs that search end to end:

- **Space**: NAT's ImageNet space (``nat_imagenet``: OFA MobileNetV3 layout, widths 1.0/1.2, kernels
  3/5/7, expansions 3/4/6, depths 2-4) at 96, 112 and 128 px -- resolutions the table covers that 2 CPU
  cores can train. Every layer of every subnet is a table entry (nothing estimated).
- **Data**: Fashion-MNIST as 3-channel images (the grey channel repeated), given as ``npz:`` as a user
  would. Source (supernet pretraining): 6 classes from the train files. Target: the 4 other classes
  (T-shirt, Pullover, Sandal, Bag) from the test files, which no source network sees.
- **Budget**: ``[budget] latency_ms = LIMIT`` with ``[hardware] table = "i7-8700K_lut"``; objectives
  error and latency_ms. The supernet is trained from scratch on the source (no ImageNet weights can be
  downloaded here), with settings sized for 2 cores (``SETTINGS``).

Reported, as facts (no claim): the front (val error, test error, predicted i7-8700K latency, MACs,
params, resolution), whether every front member is within the budget, the smallest latency the space can
reach, and one front member exported to ONNX and checked by onnxruntime. Writes
``results/hardware/lut_search.{json,md}``; the run folder (data, archive, models, export) is ``--runs``.

    python -m benchmarks.hardware.lut_search            # about 25 minutes on one core
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "hardware"
TARGET_CLASSES = (0, 2, 5, 8)          # the userdata benchmark's classes
SOURCE_CLASSES = (1, 3, 4, 6, 7, 9)    # the other six
RESOLUTIONS = [96, 112, 128]
# supernet pretraining and the NAT loop, sized for one CPU core (natkit options, passed as --option)
SETTINGS = {"pretrain_samples_per_class": 200, "pretrain_warmup_epochs": 1, "pretrain_epochs": 2,
            "pretrain_batch_size": 32, "pretrain_lr": 0.05, "initial": 16, "iterations": 6, "k": 6,
            "search_generations": 30, "search_pop": 40, "warmup_epochs": 2, "adapt_epochs": 1, "adapt_lr": 0.05,
            "reeval": "front", "n_calib": 128, "batch_size": 32}


def grey_to_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[:, None], 3, axis=1)  # N x 3 x H x W, uint8


def write_data(folder: Path, seed: int, source_per_class: int, target_per_class: int) -> dict:
    from benchmarks.userdata.data import fmnist_subset

    rng = np.random.default_rng(seed)
    info = {}
    for name, split, classes, per in (("source", "train", SOURCE_CLASSES, source_per_class),
                                      ("target", "test", TARGET_CLASSES, target_per_class)):
        x, labels, _ = fmnist_subset(split, classes, per, rng)
        path = folder / f"{name}.npz"
        np.savez_compressed(path, x=grey_to_rgb(x), y=labels)
        info[name] = {"path": str(path), "fashion_mnist_files": split, "classes": list(classes),
                      "images": int(len(labels))}
    return info


def write_space(path: Path) -> Path:
    """nat_imagenet's [space] at RESOLUTIONS (its [pretrain]/[nat]/[budget] tables are not copied)."""
    src = (ROOT / "natkit" / "search_spaces" / "nat_imagenet.toml").read_text()
    space = src.split("[space]", 1)[1].split("\n[", 1)[0]
    lines = [ln if not ln.startswith("resolutions") else f"resolutions = {RESOLUTIONS}" for ln in space.splitlines()]
    path.write_text("# nat_imagenet's layout at resolutions the i7-8700K table covers and 2 CPU cores can train\n"
                    "[space]" + "\n".join(lines) + "\n")
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=8.0, help="budget: predicted i7-8700K latency (ms)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source-per-class", type=int, default=200)
    ap.add_argument("--target-per-class", type=int, default=200,
                    help="target images per class in the npz (natkit carves test 20%%, val 20%% of the rest)")
    ap.add_argument("--train-per-class", type=int, default=50)
    ap.add_argument("--option", action="append", default=[], help="extra natkit option KEY=VALUE (smoke runs)")
    ap.add_argument("--runs", default="/tmp/natkit-lut-search", help="run folder (replaced; models are large)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from natkit.report.provenance import stamp

    t0 = time.time()
    out = Path(args.out)
    run_dir = Path(args.runs)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    data = write_data(run_dir, args.seed, args.source_per_class, args.target_per_class)
    space = write_space(run_dir / "space.toml")
    budget = run_dir / "budget.toml"
    budget.write_text(f'[budget]\nlatency_ms = {args.latency_ms}\n\n[hardware]\ntable = "i7-8700K_lut"\n')
    opts = {**SETTINGS, "pretrain_samples_per_class": args.source_per_class}
    opts.update(dict(o.split("=", 1) for o in args.option))
    cmd = [sys.executable, "-m", "natkit.cli", "search", "nat", "--task", f"npz:{data['target']['path']}",
           "--source", f"npz:{data['source']['path']}", "--space", str(space), "--budget", str(budget),
           "--objectives", "error,latency_ms", "--samples-per-class", str(args.train_per_class),
           "--seed", str(args.seed), "--threads", "1", "--out", str(run_dir / "run"), "-q"]
    for k, v in opts.items():
        cmd += ["--option", f"{k}={v}"]
    print(" ".join(cmd), flush=True)
    t_search = time.time()
    proc = subprocess.run(cmd, text=True, capture_output=True)
    search_s = time.time() - t_search
    (run_dir / "search.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"the search exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    result = summarise(run_dir / "run", args.latency_ms, space)
    result.update(data=data, settings=opts, budget_file=budget.read_text(), search_seconds=round(search_s, 1),
                  search_command=" ".join(cmd))
    result = stamp(result, t0)
    (out / "lut_search.json").write_text(json.dumps(result, indent=1, default=float))
    md = render(result)
    (out / "lut_search.md").write_text(md)
    print(md)


def summarise(run: Path, limit: float, space_file: Path) -> dict:
    from natkit.core.archive import Archive
    from natkit.core.config import read_toml
    from natkit.measure.tables import load_table
    from natkit.methods.nat.options import space_config
    from natkit.methods.nat.space import NATSpace

    info = json.loads((run / "run.json").read_text())
    archive = Archive(run / "archive.sqlite")
    rows = archive.candidates(method="nat", status="ok")
    front = archive.front(("error", "latency_ms"), method="nat")  # what `natkit front` reports
    lut = load_table("i7-8700K_lut")
    sp = NATSpace(space_config(read_toml(str(space_file))), num_classes=len(TARGET_CLASSES), in_channels=3)
    largest, smallest = (sp.decode(x) for x in sp.extremes())
    members = [{"id": c.id, "val_error": c.error, "test_error": c.test_error, "latency_ms_i7_8700K": c.latency_ms,
                "macs": c.macs, "params": c.params, "resolution": (c.arch or {}).get("resolution"),
                "chance": bool(c.extra.get("chance"))}
               for c in sorted(front, key=lambda c: c.latency_ms)]
    export = None
    if members:
        best = min(members, key=lambda r: r["val_error"])  # selected on validation
        exp_dir = run.parent / "export"
        proc = subprocess.run([sys.executable, "-m", "natkit.cli", "export", str(run), "--id", str(best["id"]),
                               "--format", "onnx", "--out", str(exp_dir)], text=True, capture_output=True)
        cand = exp_dir / "candidate.json"
        rec = json.loads(cand.read_text()).get("onnx") if cand.is_file() else None
        export = {"id": best["id"], "exit": proc.returncode, "test_error": best["test_error"],
                  "onnx_check": None if rec is None else {k: rec.get(k) for k in ("opset", "input_shape", "check")}}
    stats = info.get("stats", {})
    return {"limit_ms": limit, "front": members, "n_ok": len(rows),
            "front_within_budget": bool(members) and all(r["latency_ms_i7_8700K"] <= limit for r in members),
            "n_ok_within_budget": sum(1 for c in rows if c.latency_ms is not None and c.latency_ms <= limit),
            "smallest_subnet_latency_ms": lut.predict_arch(smallest), "largest_subnet_latency_ms":
            lut.predict_arch(largest), "run_stats": {k: stats.get(k) for k in
                                                     ("real_evaluations", "subnets_evaluated", "front_settled",
                                                      "supernet", "source_quality", "chance")},
            "hardware": info.get("hardware"), "export": export}


def render(r: dict) -> str:
    p = r["provenance"]
    md = ["# NAT search under the published i7-8700K latency table", "",
          f"Budget `latency_ms <= {r['limit_ms']}` (predicted from `i7-8700K_lut`, OFA/NSGANetV2, Apache-2.0); "
          f"objectives error, latency_ms; space `nat_imagenet` at {RESOLUTIONS} px; target: 4 Fashion-MNIST classes "
          f"as 3-channel npz, source: the other 6 (supernet trained from scratch on 2 CPU cores).", "",
          f"Space: the smallest subnet is predicted at {r['smallest_subnet_latency_ms']:.2f} ms and the largest at "
          f"{r['largest_subnet_latency_ms']:.2f} ms on the i7-8700K. {r['n_ok']} candidates evaluated, "
          f"{r['n_ok_within_budget']} within the budget; front within the budget: "
          f"**{'yes' if r['front_within_budget'] else 'NO'}**.", "",
          "| id | val error | test error | i7-8700K latency (ms, table) | MACs (M) | params (k) | resolution |",
          "|---|---|---|---|---|---|---|"]
    for m in r["front"]:
        te = "-" if m["test_error"] is None else f"{100 * m['test_error']:.1f}%"
        md.append(f"| {m['id']} | {100 * m['val_error']:.1f}% | {te} | {m['latency_ms_i7_8700K']:.2f} | "
                  f"{(m['macs'] or 0) / 1e6:.1f} | {(m['params'] or 0) / 1e3:.0f} | {m['resolution']} |")
    e = r.get("export")
    if e:
        chk = e.get("onnx_check") or {}
        c = chk.get("check") or {}
        md += ["", f"The lowest-val-error member (id {e['id']}) exported with `natkit export --format onnx`: exit "
                   f"{e['exit']}, opset {chk.get('opset')}, input {chk.get('input_shape')}; onnxruntime vs PyTorch "
                   f"max |logit difference| {c.get('max_abs_diff')} on {c.get('images')} validation images "
                   f"(tolerance 1e-4)."]
    md += ["", f"Commit `{str(p.get('commit'))[:12]}`{' (dirty)' if p.get('dirty') else ''}; `{p['command']}`; "
               f"{p['cpu']['model']}; search {r['search_seconds']} s, wall {p['wall_s']} s.", ""]
    return "\n".join(md)


if __name__ == "__main__":
    main()
