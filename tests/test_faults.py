"""Faults: a search SIGKILLed at random moments and resumed, concurrent writers, a worker killed mid-run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

TINY_SPACE = """
[space]
family = "vgg_widths"
layers = 3
pool_after = [1, 2, 3]
choices = [4, 8, 16]
hidden = 32
resolution = 8

[train]
epochs = {epochs}
lr = 0.2
batch_size = 64
max_batches = {max_batches}
"""


def _space(tmp_path: Path, max_batches=4) -> Path:
    """About 56 SGD steps per candidate, enough to leave chance level (an all-chance run exits 3)."""
    p = tmp_path / f"space{max_batches}.toml"
    p.write_text(TINY_SPACE.format(max_batches=max_batches, epochs=-(-56 // max_batches)))
    return p


def _cmd(out: Path, space: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "natkit.cli", "search", "width", "--task", "digits", "--quick",
            "--space", str(space), "--out", str(out), "--threads", "1", "-q", *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _rows(archive: Path) -> list[tuple]:
    """(id, eval_key, encoding, status, error, macs) of every archived candidate, read-only."""
    if not archive.is_file():
        return []
    db = sqlite3.connect(f"file:{archive}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT id, eval_key, encoding, status, error, macs FROM candidates ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        return []
    finally:
        db.close()


def _run(cmd, timeout=600):
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _finished(archive: Path) -> dict:
    """encoding -> (error, macs) of the finished (ok/infeasible) evaluations."""
    return {r[2]: (r[4], r[5]) for r in _rows(archive) if r[3] in ("ok", "infeasible")}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_loses_and_repeats_nothing(tmp_path):
    space = _space(tmp_path)
    ref = tmp_path / "reference"
    t0 = time.time()
    done = _run(_cmd(ref, space))
    span = time.time() - t0
    assert done.returncode == 0, done.stderr
    reference = _finished(ref / "archive.sqlite")
    assert len(reference) >= 8

    out = tmp_path / "killed"
    archive = out / "archive.sqlite"
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    kills, seen = [], {}
    for attempt in range(5):
        before = len(_rows(archive))
        cmd = _cmd(out, space, *(["--resume"] if (out / "run.json").is_file() else []))
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.time()
        if attempt % 2 == 0:  # anywhere: imports, data loading, replay, training, archiving
            time.sleep(rng.uniform(0.3, span * 0.9))
        else:  # inside the search: after this process archived something new, mid-evaluation
            while proc.poll() is None and len(_rows(archive)) <= before and time.time() - started < span * 2:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills.append((round(time.time() - started, 2), len(_rows(archive))))
        for r in _rows(archive):  # everything archived so far must survive to the end, unchanged
            seen.setdefault(r[0], r)
    assert kills, "every run finished before it could be killed"
    assert any(n > 0 for _, n in kills), f"no kill landed inside the search: {kills}"
    final = _run(_cmd(out, space, "--resume") if (out / "run.json").is_file() else _cmd(out, space))
    assert final.returncode == 0, (kills, final.stderr)

    rows = _rows(archive)
    by_id = {r[0]: r for r in rows}
    assert all(by_id.get(i) == r for i, r in seen.items()), f"a finished evaluation was lost (kills at {kills})"
    finished = [r for r in rows if r[3] in ("ok", "infeasible")]
    keys = [(r[1], r[2]) for r in finished]
    assert len(keys) == len(set(keys)), f"an evaluation was repeated (kills at {kills})"
    # the resumed search replays the uninterrupted one exactly: same candidates, same numbers
    assert _finished(archive) == reference, f"kills at {kills}"


@pytest.mark.slow
def test_two_concurrent_searches_on_one_archive_lose_nothing(tmp_path):
    space = _space(tmp_path)
    shared = tmp_path / "task.sqlite"
    procs = [subprocess.Popen(_cmd(tmp_path / f"run{s}", space, "--seed", str(s), "--archive", str(shared)),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    rows = _rows(shared)
    for s in (0, 1):
        run = json.loads((tmp_path / f"run{s}" / "run.json").read_text())
        mine = [r for r in rows if r[0] in _ids_of_run(shared, run["run_id"])]
        # every evaluation this process made is in the shared archive, once
        assert len(mine) == run["stats"]["real_evaluations"] > 0
        assert len({r[2] for r in mine}) == len(mine)
    db = sqlite3.connect(shared)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(r[0] for r in db.execute("SELECT status FROM runs")) == ["done", "done"]


def _ids_of_run(archive: Path, run_id: int) -> set:
    db = sqlite3.connect(archive)
    try:
        return {r[0] for r in db.execute("SELECT id FROM candidates WHERE run_id=?", (run_id,))}
    finally:
        db.close()


def _dask_workers(pid: int) -> list:
    import psutil

    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing" in cmd and "resource_tracker" not in cmd and "forkserver" not in cmd:
            out.append(child)
    return out


@pytest.mark.slow
def test_search_finishes_when_a_dask_worker_is_killed_mid_evaluation(tmp_path):
    pytest.importorskip("distributed")
    space = _space(tmp_path, max_batches=12)  # evaluations of about a second: the kill lands inside one
    out = tmp_path / "dask"
    archive = out / "archive.sqlite"
    proc = subprocess.Popen(_cmd(out, space, "--workers", "2"), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        workers = _dask_workers(proc.pid)
        n = len(_rows(archive))
        if len(workers) == 2 and n >= 2:  # both workers up and busy with the population
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.2)
    assert killed is not None, "the search ended before a worker could be killed"
    archived_at_kill = n
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    rows = _rows(archive)
    assert len(rows) == run["stats"]["real_evaluations"] > archived_at_kill
    assert len({r[2] for r in rows}) == len(rows)  # nothing evaluated twice
    statuses = {r[3] for r in rows}
    assert statuses <= {"ok", "failed", "infeasible"} and "ok" in statuses
    db = sqlite3.connect(archive)
    assert db.execute("SELECT status FROM runs").fetchall() == [("done",)]
