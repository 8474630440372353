"""Reliability figures: the hostile-input suite by category, SIGKILL-then-resume and two same-seed
processes on one archive, written to results/reliability/ (md + json).

Claims (stated before running; each is checked and reported pass/fail, a failure is a result):
1. hostile: every case of tests/test_hostile*.py passes (exit 2, one line, no traceback, no unsafe-load hint,
   every archive and foreign file byte-identical).
2. sigkill: for `width`, `lda` and `nat` (a tiny supernet), a search SIGKILLed at random moments (4 kills) and resumed holds 0 repeated
   (eval_key, encoding) finished rows, loses no archived row, and ends with the same front as an uninterrupted
   run with the same seed.
3. concurrency: two same-seed `width` processes on one archive evaluate each candidate once (rows = distinct
   candidates, each process evaluates some) and the pair finishes sooner than one process alone
   (decision rule: pair wall time / single wall time < 1; both measured in this run, load average recorded).

    python -m benchmarks.reliability.figures [--out results/reliability] [--skip-hostile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

WIDTH_SPACE = """[space]
family = "vgg_widths"
layers = 3
pool_after = [1, 2, 3]
choices = [8, 16, 32]
hidden = 32
resolution = 16

[train]
epochs = 1
lr = 0.05
batch_size = 64
max_batches = {max_batches}
"""
LDA_OPTIONS = ["--samples-per-class", "20", "--option", "model=vgg_tiny", "--option", "resolution=16",
               "--option", "transfer_epochs=3", "--option", "finetune_epochs=2", "--option", "trace_images=64",
               "--option", "lr=0.1", "--option", "schedule_rounds=2", "--option", "source_epochs=1",
               "--option", "source_samples_per_class=30"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


NAT_TINY = """[space]
family = "nat_mbv3"
resolutions = [12, 16]
width_mults = [1.0, 1.2]
stem_width = 4
first_block_width = 4
stage_widths = [4, 8, 8, 8, 12]
feature_mix_width = 16
divisor = 4

[pretrain]
samples_per_class = 10
warmup_epochs = 0.5
epochs = 0.5
n_random = 1
batch_size = 32

[nat]
initial = 5
iterations = 3
k = 2
surrogate = "rbf_ensemble"
search_generations = 3
search_pop = 8
warmup_epochs = 3
adapt_epochs = 0.5
adapt_samples = 1
reeval = "front"
n_calib = 32
"""
# (every val image, 3 warm-up epochs: with val_limit = 60 and 0.2 epochs every candidate of this tiny supernet
# was within noise of chance once the chance margin was judged on the 60 images actually measured)


def search_cmd(method: str, out: Path, work: Path, *extra, max_batches: int = 6) -> list[str]:
    cmd = [PY, "-m", "natkit.cli", "search", method, "--task", "digits", "--quick", "--out", str(out), "-q"]
    if method == "nat":  # a tiny supernet pretrained on digits itself: the loop, not the pretraining, is probed
        space = work / "nat_tiny.toml"
        space.write_text(NAT_TINY)
        cmd = [c for c in cmd if c != "--quick"] + ["--space", str(space), "--source", "digits",
                                                    "--samples-per-class", "15"]
    if method in ("width", "random"):
        space = work / f"space{max_batches}.toml"
        space.write_text(WIDTH_SPACE.format(max_batches=max_batches))
        cmd += ["--space", str(space)]
    elif method == "lda":
        cmd += LDA_OPTIONS
    if "--threads" not in extra and "--workers" not in extra:
        cmd += ["--threads", "1"]
    return cmd + [str(e) for e in extra]


def rows(archive: Path) -> list[tuple]:
    """(id, eval_key, encoding, status, error, macs) of every candidate, read-only."""
    if not archive.is_file():
        return []
    db = sqlite3.connect(f"file:{archive}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT id, eval_key, encoding, status, error, macs FROM candidates ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        return []
    finally:
        db.close()


def finished(archive: Path) -> dict:
    """(eval_key, encoding) -> (error, macs) of the finished (ok/infeasible) evaluations."""
    return {(r[1], r[2]): (r[4], r[5]) for r in rows(archive) if r[3] in ("ok", "infeasible")}


def repeats(archive: Path) -> int:
    keys = [(r[1], r[2]) for r in rows(archive) if r[3] in ("ok", "infeasible")]
    return len(keys) - len(set(keys))


def front(archive: Path, method: str) -> list[tuple]:
    from natkit.core.archive import Archive

    a = Archive(archive, readonly=True)
    try:
        return sorted((json.dumps(c.encoding), c.error, c.macs) for c in a.front(("error", "macs"), method=method))
    finally:
        a.close()


def run(cmd, timeout=1200) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.time()
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    return done, time.time() - t0


def sigkill_scenario(method: str, work: Path, n_kills: int = 4, seed: int | None = None) -> dict:
    """Uninterrupted reference, then the same search SIGKILLed ``n_kills`` times and resumed; returns the
    figures (the caller asserts). The first kill lands at a random moment of start-up (imports, data,
    pretraining); the others at random points of the search's progress: a random archive row count is
    drawn, and the process is killed a random 0-0.2 s after the archive reaches it (mid-evaluation,
    mid-write or mid-replay)."""
    work.mkdir(parents=True, exist_ok=True)
    ref = work / "reference"
    t_ref = time.time()
    done, span = run(search_cmd(method, ref, work))
    if done.returncode != 0:
        raise RuntimeError(f"reference {method} run failed: {done.stderr[-800:]}")
    n_ref = len(rows(ref / "archive.sqlite"))
    out = work / "killed"
    archive = out / "archive.sqlite"
    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    targets = sorted(rng.sample(range(1, max(n_ref, n_kills)), min(n_kills - 1, max(n_ref - 1, 1))))
    kills, seen, t_all = [], {}, time.time()
    for attempt in range(n_kills):
        resume = ["--resume"] if (out / "run.json").is_file() else []
        proc = subprocess.Popen(search_cmd(method, out, work, *resume), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started = time.time()
        if attempt == 0:
            time.sleep(rng.uniform(0.5, max(1.0, span * 0.3)))
        else:
            target = targets[min(attempt - 1, len(targets) - 1)]
            while proc.poll() is None and len(rows(archive)) < target and time.time() - started < span * 3:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.2))  # soon after the target row: lda archives its search in a burst
        if proc.poll() is not None:
            kills.append({"after_s": round(time.time() - started, 2), "rows": len(rows(archive)), "finished": True})
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills.append({"after_s": round(time.time() - started, 2), "rows": len(rows(archive))})
        for r in rows(archive):
            seen.setdefault(r[0], r)
    resume = ["--resume"] if (out / "run.json").is_file() else []
    final, _ = run(search_cmd(method, out, work, *resume))
    by_id = {r[0]: r for r in rows(archive)}
    landed = [k for k in kills if not k.get("finished")]
    return {
        "method": method, "kills": landed, "final_exit": final.returncode, "final_stderr": final.stderr[-400:],
        "kills_inside_search": sum(1 for k in landed if 0 < k["rows"] < n_ref),
        "reference_rows": n_ref, "reference_s": round(span, 1),
        "rows": len(by_id), "finished_rows": sum(1 for r in by_id.values() if r[3] in ("ok", "infeasible")),
        # lost: a row gone or its numbers changed (a status may move on: NAT marks superseded rows stale)
        "repeated_rows": repeats(archive),
        "lost_rows": sum(1 for i, r in seen.items() if i not in by_id or by_id[i][:3] + by_id[i][4:] != r[:3] + r[4:]),
        "same_results_as_reference": finished(archive) == finished(ref / "archive.sqlite"),
        "same_front_as_reference": front(archive, method) == front(ref / "archive.sqlite", method),
        "total_s": round(time.time() - t_all, 1), "with_reference_s": round(time.time() - t_ref, 1),
    }


def concurrency_scenario(work: Path, max_batches: int = 30, rounds: int = 2, size=("3", "8")) -> dict:
    """One `width` process alone, then two with the same seed on one fresh archive; ``rounds`` interleaved
    rounds (solo, pair, solo, pair, ...) so that a change in the host's load hits both alike."""
    work.mkdir(parents=True, exist_ok=True)
    gens = ["--generations", size[0], "--pop-size", size[1]]

    def cmd(out, *extra):
        c = search_cmd("width", out, work, *gens, *extra, max_batches=max_batches)
        return [x for x in c if x != "--quick"]  # --quick would cap the population

    t_solo, t_pair, res = [], [], {}
    for r in range(rounds):
        solo, t = run(cmd(work / f"solo{r}"))
        if solo.returncode != 0:
            raise RuntimeError(f"single width run failed: {solo.stderr[-800:]}")
        t_solo.append(t)
        shared = work / f"shared{r}.sqlite"
        t0 = time.time()
        procs = [subprocess.Popen(cmd(work / f"r{r}p{k}", "--archive", shared), env=env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in (0, 1)]
        for p in procs:
            p.communicate(timeout=1800)
        t_pair.append(time.time() - t0)
        runs = [json.loads((work / f"r{r}p{k}" / "run.json").read_text()) for k in (0, 1)]
        all_rows = rows(shared)
        res.setdefault("exit_codes", []).append([p.returncode for p in procs])
        res.setdefault("rows", []).append(len(all_rows))
        res.setdefault("distinct", []).append(len({(x[1], x[2]) for x in all_rows}))
        res.setdefault("repeated_rows", []).append(repeats(shared))
        res.setdefault("solo_rows", []).append(len(rows(work / f"solo{r}" / "archive.sqlite")))
        res.setdefault("evaluated_per_process", []).append([x["stats"]["real_evaluations"] for x in runs])
        res.setdefault("same_front_as_solo", []).append(
            front(shared, "width") == front(work / f"solo{r}" / "archive.sqlite", "width"))
    res.update(solo_s=[round(t, 1) for t in t_solo], pair_s=[round(t, 1) for t in t_pair],
               pair_over_solo=round(sum(t_pair) / sum(t_solo), 3), load_avg_1min=round(os.getloadavg()[0], 2),
               settings={"generations": size[0], "pop_size": size[1], "max_batches": max_batches, "rounds": rounds})
    return res


SINGLE = {"test_a_copied_run_folder_reads_its_own_archive": "archives",
          "test_damaged_rows_are_skipped_with_a_warning_naming_their_ids": "archives",
          "test_export_of_a_model_with_the_wrong_layout_exits_2": "weights",
          "test_lda_space_of_the_wrong_shape": "toml", "test_toml_that_is_a_folder": "toml",
          "test_npz_that_is_not_a_zip": "data", "test_read_only_archive_refuses_search_and_still_reads": "outputs",
          "test_resume_record_that_is_not_json": "resume",
          "test_unreachable_scheduler_fails_within_its_timeout": "search-args"}


def hostile_table(work: Path) -> dict:
    """Run tests/test_hostile.py and tests/test_hostile_files.py and count its cases by category (the part of each id before '/')."""
    import xml.etree.ElementTree as ET

    xml = work / "hostile.xml"
    t0 = time.time()
    subprocess.run([PY, "-m", "pytest", str(ROOT / "tests" / "test_hostile.py"), str(ROOT / "tests" / "test_hostile_files.py"),
                    "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}"], env=env(), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    cats: dict = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name")
        param = name[name.index("[") + 1:-1] if "[" in name else None
        cat = param.split("/")[0] if param and "/" in param else SINGLE.get(name, "other")
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        c = cats.setdefault(cat, {"cases": 0, "passed": 0, "skipped": 0, "names": []})
        c["cases"] += 1
        c["passed"] += int(not failed and not skipped)
        c["skipped"] += int(skipped)
        c["names"].append((param or name) + ("" if not failed else "  FAILED"))
    return {"categories": cats, "cases": sum(c["cases"] for c in cats.values()),
            "passed": sum(c["passed"] for c in cats.values()), "seconds": round(time.time() - t0, 1)}


def stamp(argv) -> dict:
    import torch

    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "command": "python -m benchmarks.reliability.figures " + " ".join(argv), "cpu": cpu,
            "cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def markdown(res: dict) -> str:
    s = res["stamp"]
    out = ["# Reliability figures", "",
           f"commit `{s['commit'][:12]}`{' (dirty)' if s['dirty'] else ''}; `{s['command']}`; {s['cpu']}, "
           f"{s['cpus']} CPUs; torch {s['torch']}; load average at start {s['load_avg_at_start']}; "
           f"wall {res['wall_s']} s.", ""]
    h = res.get("hostile")
    if h:
        out += ["## Hostile input (tests/test_hostile.py, tests/test_hostile_files.py)", "",
                f"{h['passed']} of {h['cases']} cases pass ({h['seconds']} s).", "",
                "| category | cases | pass |", "|---|---:|---:|"]
        out += [f"| {k} | {v['cases']} | {v['passed']} |" for k, v in sorted(h["categories"].items())]
        out += ["", "Cases by category:", ""]
        out += [f"- **{k}**: " + ", ".join(f"`{n}`" for n in v["names"]) for k, v in sorted(h["categories"].items())]
        out.append("")
    out += ["## SIGKILL at random moments, then --resume", "",
            "Each kill: seconds after that process started, and the archive's rows at the kill. The uninterrupted "
            "reference run has the same seed and settings.", "",
            "| method | kills (after s: rows) | inside the search | rows | reference rows | repeated | lost | "
            "same front as uninterrupted | reference s | kills + resume s |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for k in res["sigkill"]:
        kills = ", ".join(f"{x['after_s']}: {x['rows']}" for x in k["kills"])
        out.append(f"| {k['method']} | {kills} | {k['kills_inside_search']} | {k['rows']} | {k['reference_rows']} | "
                   f"{k['repeated_rows']} | {k['lost_rows']} | {k['same_front_as_reference']} | {k['reference_s']} | "
                   f"{k['total_s']} |")
    c = res["concurrency"]
    out += ["", "## Two same-seed processes on one archive (`width`)", "",
            f"Settings {c['settings']}; per round: rows {c['rows']}, distinct candidates {c['distinct']}, "
            f"repeated {c['repeated_rows']} (one process alone: {c['solo_rows']} rows); evaluations per process "
            f"{c['evaluated_per_process']}; same front as the single process: {c['same_front_as_solo']}.", "",
            f"Wall time, interleaved rounds: one process {c['solo_s']} s, the pair {c['pair_s']} s; sum ratio "
            f"{c['pair_over_solo']} (load average {c['load_avg_1min']} at the end, on {s['cpus']} CPUs shared with "
            f"other work: the ratio is contaminated by that load).", "",
            "## Claims", ""]
    out += [f"- {cl['claim']}: **{'holds' if cl['holds'] else 'fails'}** ({cl['evidence']})" for cl in res["claims"]]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "reliability"))
    ap.add_argument("--skip-hostile", action="store_true")
    ap.add_argument("--seed", type=int, default=23, help="seed of the kill moments")
    a = ap.parse_args(argv)
    t0 = time.time()
    res: dict = {"stamp": stamp(argv)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["NATKIT_CACHE"] = str(tmp / "cache")  # pretraining from scratch, never the user's cache
        if not a.skip_hostile:
            res["hostile"] = hostile_table(tmp / "hostile")
        res["sigkill"] = [sigkill_scenario(m, tmp / f"kill-{m}", seed=a.seed) for m in ("width", "lda", "nat")]
        res["concurrency"] = concurrency_scenario(tmp / "concurrency")
    res["wall_s"] = round(time.time() - t0, 1)
    c = res["concurrency"]
    res["claims"] = [
        {"claim": "hostile: every case passes", "holds": bool(res.get("hostile")) and
         res["hostile"]["passed"] == res["hostile"]["cases"],
         "evidence": f"{res['hostile']['passed']}/{res['hostile']['cases']}" if res.get("hostile") else "not run"},
        *[{"claim": f"sigkill {k['method']}: 0 repeated, 0 lost, same front", "holds": k["repeated_rows"] == 0 and
           k["lost_rows"] == 0 and k["same_front_as_reference"] and k["final_exit"] == 0 and
           k["kills_inside_search"] > 0,
           "evidence": f"{len(k['kills'])} kills ({k['kills_inside_search']} inside the search), "
                       f"{k['repeated_rows']} repeated, {k['lost_rows']} lost"}
          for k in res["sigkill"]],
        {"claim": "concurrency: rows = distinct, both processes evaluate", "holds": c["rows"] == c["distinct"] and
         all(n > 0 for pp in c["evaluated_per_process"] for n in pp) and
         all(e == [0, 0] for e in c["exit_codes"]) and all(c["same_front_as_solo"]),
         "evidence": f"rows {c['rows']}, distinct {c['distinct']}, per process {c['evaluated_per_process']}"},
        {"claim": "concurrency: the pair finishes sooner than one process", "holds": c["pair_over_solo"] < 1,
         "evidence": f"ratio {c['pair_over_solo']}"},
    ]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "README.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
