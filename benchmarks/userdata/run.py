"""A user's own small data through every method (issue 21): `python -m benchmarks.userdata.run`.

Task: 4 Fashion-MNIST classes (T-shirt, Pullover, Sandal, Bag), images from the Fashion-MNIST test
files (never seen by source pretraining), given to natkit as `npz:` with 20 training images per class
(80 training, 64 val, 80 test images). Every method runs with `--quick` (and in default mode with
`--modes quick,default`), seed 0, into its own fresh run folder.

Claim (written before the run): on this task, with the data-scaled training budgets and the chance
flag of this branch, (1) no method's reported front holds a candidate whose val error is within
binomial noise of chance (recomputed here, not read from the flag), (2) every front member has a test
error and exports with `natkit export`, (3) the run's log names every at-chance candidate. Statistic:
count of front members at chance per method; decision rule: claim holds iff that count is 0 and
(2) holds for every method that exits 0. A method that exits 3 (all candidates at chance) fails (1)
for that method and is reported as such. Each method's validation-selected test error (the front
member with the lowest val error) is compared with a logistic regression on raw pixels and a small
CNN from scratch, both selected on val, on the same splits. One seed (compute: 2 cores; a default-mode run
that did not finish within its launch is not in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from natkit.report.provenance import code_state

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["width", "random", "nat", "tascnet", "progressive", "ke", "lda"]


def stamp(argv) -> dict:
    from natkit.core.archive import package_versions

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    import torch

    # dirty: tracked source changes only (the benchmark's own outputs under results/ do not count)
    return {**code_state(ROOT), "command": "python -m benchmarks.userdata.run " + " ".join(argv),
            "versions": package_versions(), "cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg_at_start": os.getloadavg()}


def run_method(method: str, task_spec: str, out: Path, mode: str, seed: int, timeout: int, reuse=False) -> dict:
    run_dir = out / "runs" / f"{method}-{mode}"
    done = run_dir / "done.json"
    if reuse and done.is_file():  # a finished run of an earlier launch (its commit is in done.json)
        # reused only with its stored models: they are not committed, so in a fresh checkout the run could not
        # export its front, and it is made again
        if (run_dir / "models").is_dir():
            prev = json.loads(done.read_text())
            return {**prev, **inspect(run_dir, (run_dir / "log.txt").read_text()), "reused": True}
        print(f"{method}-{mode}: no stored models (a fresh checkout?), so not reused: it runs again", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: an earlier launch's rows must not share its archive
    cmd = [sys.executable, "-m", "natkit.cli", "search", method, "--task", task_spec, "--samples-per-class", "20",
           "--out", str(run_dir), "--seed", str(seed), "--threads", "1"] + (["--quick"] if mode == "quick" else [])
    t0, commit = time.time(), code_state(ROOT)["commit"]  # the code that runs: HEAD when the run starts, not ends
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        code, log = proc.returncode, proc.stderr + proc.stdout
    except subprocess.TimeoutExpired as exc:
        code, log = "timeout", (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else str(exc.stderr)
    seconds = time.time() - t0
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log.txt").write_text(log)
    row = {"method": method, "mode": mode, "exit_code": code, "seconds": round(seconds, 1),
           "command": " ".join(["natkit"] + cmd[3:]), "commit": commit}
    done.write_text(json.dumps(row))
    return {**row, **inspect(run_dir, log)}


def inspect(run_dir: Path, log: str) -> dict:
    from natkit.cli import archive_path, main as natkit
    from natkit.core.archive import Archive
    from natkit.core.chance import ChanceLevel
    from benchmarks.userdata.references import chance_front_members

    if not (run_dir / "run.json").is_file():
        return {"front_size": 0}
    record = json.loads((run_dir / "run.json").read_text())
    stats = record.get("stats", {})
    archive = Archive(archive_path(str(run_dir)))
    front = archive.front(["error", "macs"], run_id=record["run_id"])
    chance = stats.get("chance", {})
    level = ChanceLevel(chance.get("n_val", 0), chance.get("chance_error", 1.0), chance.get("threshold_error", 1.0))
    flagged = [c for c in archive.candidates(run_id=record["run_id"]) if c.extra.get("chance")]
    named = all(f"candidate {c.id} is at chance" in log for c in flagged)
    exported = 0
    for c in front:
        if natkit(["export", str(run_dir), "--id", str(c.id), "--out", str(run_dir / "export" / str(c.id))]) == 0:
            exported += 1
    best = min(front, key=lambda c: c.error, default=None)
    archive.close()
    return {"front_size": len(front), "measured": chance.get("measured"), "at_chance": chance.get("at_chance"),
            "chance_on_front": chance_front_members(front, level), "log_names_all_flagged": named,
            "front_with_test_error": sum(c.test_error is not None for c in front), "front_exported": exported,
            "selected": None if best is None else {"id": best.id, "val_error": best.error,
                                                   "test_error": best.test_error, "params": best.params,
                                                   "macs": best.macs},
            "source_quality": stats.get("source_quality"), "training_budget": stats.get("training_budget"),
            "chance_level": {k: chance.get(k) for k in ("n_val", "chance_error", "threshold_error")}}


def table(rows, refs) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = ["| method | mode | exit | val-selected test error (val) | params | MACs | front | at chance "
             "(of measured) | at chance on front | front exportable with test error | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r.get("selected") or {}
        lines.append(f"| {r['method']} | {r['mode']} | {r['exit_code']} | {pct(s.get('test_error'))} "
                     f"({pct(s.get('val_error'))}) | {int(s['params']):,} | {int(s['macs']):,} | "
                     if s else f"| {r['method']} | {r['mode']} | {r['exit_code']} | - | - | - | ")
        lines[-1] += (f"{r['front_size']} | {r.get('at_chance')} (of {r.get('measured')}) | "
                      f"{r.get('chance_on_front', '-')} | {r.get('front_exported', 0)}/{r['front_size']} exported, "
                      f"{r.get('front_with_test_error', 0)}/{r['front_size']} tested | {r['seconds']} |")
    for ref in refs:
        extra = f"{int(ref['params']):,} | {int(ref['macs']):,}" if "params" in ref else "- | -"
        lines.append(f"| {ref['reference']} | reference | - | {pct(ref['test_error'])} ({pct(ref['val_error'])}) | "
                     f"{extra} | - | - | - | - | - |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/userdata")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--modes", default="quick", help="quick and/or default (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per method run")
    ap.add_argument("--jobs", type=int, default=1, help="method runs at once (each a process, 1 torch thread)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep method runs an earlier launch finished (only those whose stored models are still there)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from benchmarks.userdata.data import write_npz
    from benchmarks.userdata.references import logistic_regression, small_cnn
    from natkit.data import load_task

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = stamp(argv)
    t0 = time.time()
    data = write_npz(out / "fmnist4.npz", seed=args.seed)
    spec = f"npz:{(out / 'fmnist4.npz').resolve()}"
    task = load_task(spec, seed=args.seed, samples_per_class=20)
    refs = [logistic_regression(task, args.seed), small_cnn(task, args.seed)]
    print("references:", json.dumps(refs), flush=True)
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(method.strip(), mode.strip()) for mode in args.modes.split(",") if mode.strip()
            for method in args.methods.split(",") if method.strip()]
    rows = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # threads only wait on subprocesses
        futures = [pool.submit(run_method, m, spec, out, mode, args.seed, args.timeout, args.reuse)
                   for m, mode in jobs]
        for fut in futures:
            rows.append(fut.result())
            print(json.dumps(rows[-1], default=str), flush=True)
            write(out, meta, data, task, refs, rows, t0)
    write(out, meta, data, task, refs, rows, t0)
    ok = all(r.get("chance_on_front") == 0 and r["exit_code"] == 0 and
             r.get("front_exported") == r["front_size"] == r.get("front_with_test_error") for r in rows)
    print(f"claim {'holds' if ok else 'fails'}; results in {out}/")
    return 0


def write(out, meta, data, task, refs, rows, t0):
    result = {**meta, "wall_s": round(time.time() - t0, 1), "load_avg_at_end": os.getloadavg(), "data": data,
              "task": task.describe(), "references": refs, "runs": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    held = [r for r in rows if r.get("chance_on_front") == 0 and r["exit_code"] == 0 and
            r.get("front_exported") == r["front_size"] == r.get("front_with_test_error")]
    md = [f"# A user's own small data: {len(task.class_names)} Fashion-MNIST classes, 20 training images per class",
          "", __doc__.split("\n\n", 1)[1].strip(), "",
          f"Splits: {task.describe()['sizes']}. Commit `{meta['commit'][:12]}`{' (dirty)' if meta['dirty'] else ''}; "
          f"command `{meta['command']}`; CPU {meta['cpu']} ({meta['cpus']} cores, shared; load "
          f"{meta['load_avg_at_start'][0]:.1f} at start), torch threads {meta['torch_threads']}; "
          f"wall {result['wall_s']:.0f} s. Versions: {json.dumps(meta['versions'])}.", "",
          table(rows, refs), "",
          f"Claim holds for {len(held)} of {len(rows)} method runs: "
          + ", ".join(f"{r['method']} ({r['mode']})" for r in held) + "."]
    (out / "README.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
