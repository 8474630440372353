"""ONNX export of every method's quick front, checked by onnxruntime, and what int8 costs and gains.

For each method (the five and the two reference searches) a `--quick` search on digits (source
fashion-mnist) is run, unless its run directory already exists under --runs; then every stored front
member is exported with `natkit export --format onnx --int8`: the fp32 check (onnxruntime vs PyTorch logits
on validation images, tolerance 1e-4) and int8's validation/test error, size and onnxruntime latency (1
thread, interleaved with fp32) are collected from each candidate.json. This is a report of facts, no claim:
the int8 drop and speed-up per method. Runs and exports already present under --runs are reused.

    nice -n 10 python -m benchmarks.hardware.int8 [--runs DIR] [--methods nat,width,...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.hardware.latency import RESULTS, git_state, stamp

METHODS = ("width", "random", "ke", "lda", "progressive", "tascnet", "nat")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="/tmp/natkit-int8-runs", help="where the quick runs live (reused if present)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--search-args", default="", help="extra arguments of every search, e.g. "
                    "'--generations 1 --pop-size 2' for a smoke run")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from natkit.cli import main as natkit

    t0, load_start, state = time.time(), os.getloadavg(), git_state()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    prev = json.loads((out / "int8.json").read_text()) if (out / "int8.json").is_file() else {}
    prev_commit = {r["method"]: r.get("search_commit", prev.get("commit")) for r in prev.get("rows", [])}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        d = runs / method
        reused = (d / "run.json").is_file() and "stats" in json.loads((d / "run.json").read_text())
        if not reused:
            code = natkit(["search", method, "--task", "digits", "--source", "fashion-mnist", "--quick", "-q",
                           "--out", str(d), *args.search_args.split()])
            if code != 0:
                rows.append({"method": method, "error": f"search exited {code}"})
                continue
        ids = sorted(int(p.name) for p in (d / "models").iterdir() if (p / "arch.json").is_file())
        # the commit whose code ran the search: this launch's, or for a search reused from an earlier launch
        # (same --runs), the one the previous int8.json recorded for it (None when that is not known)
        search_commit = prev_commit.get(method) if reused else state["commit"]
        for cid in ids:
            exp = d / "export" / str(cid)
            done = exp / "candidate.json"
            code = 0
            if not (done.is_file() and "int8" in json.loads(done.read_text())):  # exports already made are reused
                code = natkit(["export", str(d), "--id", str(cid), "--format", "onnx", "--int8", "--out", str(exp)])
            rec = json.loads(done.read_text()) if done.is_file() else {}
            if code != 0 or "int8" not in rec:
                rows.append({"method": method, "id": cid, "error": f"export exited {code}"})
                continue
            o, q = rec["onnx"], rec["int8"]
            rows.append({"method": method, "id": cid, "search_commit": search_commit, "arch": rec.get("arch", {}).get("name") if isinstance(rec.get("arch"), dict) else None,
                         "input_shape": o["input_shape"], "check_ok": o["check"]["ok"],
                         "max_abs_diff": o["check"]["max_abs_diff"], "check_images": o["check"]["images_source"],
                         "fp32_val_error": q["fp32"]["val_error"], "int8_val_error": q["val_error"],
                         "fp32_test_error": q["fp32"]["test_error"], "int8_test_error": q["test_error"],
                         "fp32_bytes": q["fp32"]["bytes"], "int8_bytes": q["bytes"],
                         "fp32_ms": q["fp32"]["latency_ms"], "int8_ms": q["latency_ms"], "speedup": q["speedup"]})
    st = stamp(t0, load_start, state, "benchmarks.hardware.int8")
    (out / "int8.json").write_text(json.dumps({"rows": rows, **st}, indent=1))
    md = ["# ONNX export of each method's quick front: fp32 check and int8", "",
          "| method | front members exported | fp32 check ok | max abs diff | test error fp32 -> int8 (mean) | "
          "size int8/fp32 | speed-up (median) |", "|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method and "error" not in r]
        bad = [r for r in rows if r["method"] == method and "error" in r]
        if not rs:
            md.append(f"| {method} | 0 ({'; '.join(r['error'] for r in bad)}) | - | - | - | - | - |")
            continue
        md.append(f"| {method} | {len(rs)}{f' ({len(bad)} failed)' if bad else ''} | "
                  f"{sum(r['check_ok'] for r in rs)}/{len(rs)} | {max(r['max_abs_diff'] for r in rs):.1e} | "
                  f"{100 * np.mean([r['fp32_test_error'] for r in rs]):.2f}% -> "
                  f"{100 * np.mean([r['int8_test_error'] for r in rs]):.2f}% | "
                  f"{np.mean([r['int8_bytes'] / r['fp32_bytes'] for r in rs]):.2f} | "
                  f"{np.median([r['speedup'] for r in rs]):.2f}x |")
    md += ["", f"onnxruntime, 1 thread, batch 1; int8 = static QDQ quantization calibrated on 256 training images. "
           f"Commit {st['commit']}{' (dirty)' if st['dirty'] else ''}; `{st['command']}`; {st['cpu']}; load average "
           f"{st['loadavg_start']} -> {st['loadavg_end']}; {st['wall_s']} s."]
    other = {r["method"]: r["search_commit"] for r in rows if r.get("search_commit", st["commit"]) != st["commit"]}
    if other:  # searches reused from an earlier launch (same --runs): the code that made them
        md += ["", "Searches reused from an earlier launch (same --runs), made at: "
               + "; ".join(f"{m} {str(c)[:8]}" for m, c in other.items()) + "."]
    (out / "int8.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
