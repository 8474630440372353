"""Processes sharing one archive: the writer claims a candidate before it evaluates it, waits for a row
another live process is computing, takes over a dead or silent owner's claim, and never stores a finished
(eval_key, encoding) twice. Two same-seed searches (lda, tascnet) on one archive evaluate each candidate
once (tests/pair_support.py runs them)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from natkit.core.archive import Archive
from natkit.core.evaluator import EvalResult
from natkit.core.writer import ArchiveWriter, write_row

ROOT = Path(__file__).resolve().parents[1]


def _result(error=0.25):
    return EvalResult({"error": error, "params": 10, "macs": 20}, None, "ok", "", {}, 0.0, None)


class _Calls:
    """A callable result that counts its calls."""

    def __init__(self, error=0.25, fail=None):
        self.n, self.error, self.fail = 0, error, fail

    def __call__(self):
        self.n += 1
        if self.fail:
            raise self.fail
        return _result(self.error)


def _writer(archive):
    return ArchiveWriter(archive, archive.start_run("m", "t", {}, 0), "m")


def _plant_claim(path, owner, heartbeat, key="k", enc="[1]"):
    db = sqlite3.connect(path)
    db.execute("INSERT INTO claims VALUES (?,?,?,?)", (key, enc, owner, heartbeat))
    db.commit()
    db.close()


def _waiter(path, enc, calls):
    """Write ``enc`` from another thread (an sqlite connection belongs to its thread): its own archive
    object, so its own owner, as another process would have."""
    out: dict = {}

    def run():
        try:
            out["row"] = _writer(Archive(path)).write(enc, calls, eval_key="k")
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_a_candidate_another_process_is_evaluating_is_waited_for_and_read_back(tmp_path):
    path = tmp_path / "a.sqlite"
    other = Archive(path)
    run = other.start_run("m", "t", {}, 0)
    assert other.claim("k", [1]) == ("mine", None)
    calls = _Calls()
    t, out = _waiter(path, [1], calls)
    time.sleep(0.8)
    assert t.is_alive() and calls.n == 0  # waiting, not evaluating
    other.add(run, "m", generation=0, encoding=[1], metrics={"error": 0.1, "macs": 3}, eval_key="k")
    t.join(10)
    row = out["row"]
    assert calls.n == 0 and row.reused and row.metrics["error"] == 0.1
    assert len(other.candidates()) == 1 and other.claims() == []


def test_a_claim_whose_owner_died_or_went_silent_is_taken_over(tmp_path):
    path = tmp_path / "a.sqlite"
    a = Archive(path, claim_timeout=1.0)
    w = _writer(a)
    _plant_claim(path, f"{socket.gethostname()}:999999999:x", time.time(), enc="[1]")  # pid gone on this host
    _plant_claim(path, "far-away-host:1:y", time.time(), enc="[2]")  # alive elsewhere until its beat stops
    dead, silent = _Calls(0.1), _Calls(0.2)
    assert not w.write([1], dead, eval_key="k").reused and dead.n == 1
    t0 = time.time()
    assert not w.write([2], silent, eval_key="k").reused and silent.n == 1
    assert time.time() - t0 >= 0.5  # it waited for the heartbeat to age past the timeout
    assert [c.error for c in a.candidates()] == [0.1, 0.2] and a.claims() == []


def test_a_claim_released_without_a_result_is_evaluated_by_the_waiter_and_a_failure_releases_it(tmp_path):
    path = tmp_path / "a.sqlite"
    other = Archive(path)
    assert other.claim("k", [1])[0] == "mine"
    calls = _Calls()
    t, out = _waiter(path, [1], calls)
    time.sleep(0.8)
    assert t.is_alive() and calls.n == 0
    other.release("k", [1])  # e.g. the other process was interrupted and dropped its claims
    t.join(10)
    assert not out["row"].reused and calls.n == 1
    boom = _Calls(fail=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _writer(other).write([2], boom, eval_key="k")
    assert other.claims() == []  # not left behind for others to wait on


def test_a_finished_row_that_appeared_meanwhile_is_returned_not_added_again(tmp_path):
    path = tmp_path / "a.sqlite"
    a, b = Archive(path), Archive(path)
    w = _writer(a)
    first = w.write([1], _result(0.1), eval_key="k")  # stored by one process ...
    # ... while the other had computed the same candidate from before its look-up: the insert finds it
    looks: list = []
    real_lookup = b.lookup
    b.lookup = lambda key, enc: real_lookup(key, enc) if looks else looks.append(1)  # the first sees nothing
    again = write_row(b, run_id=w.run_id, method="m", eval_key="k", encoding=[1], result=_result(0.3),
                      model_dir=tmp_path / "models")
    assert again.reused and again.id == first.id and again.metrics["error"] == 0.1
    assert len(a.candidates()) == 1 and not (tmp_path / "models").exists()


def test_a_side_row_measures_only_when_the_row_is_not_archived(tmp_path):
    w = _writer(Archive(tmp_path / "a.sqlite"))
    n = []

    def measure():
        n.append(1)
        return {"error": 0.2, "params": 5, "macs": 6, "robust_error": 0.4}

    first = w.side_row(["base"], eval_key="k", metrics=measure, extra={"stage": "unpruned"})
    again = w.side_row(["base"], eval_key="k", metrics=measure, extra={"stage": "unpruned"})
    assert len(n) == 1 and again.reused and again.id == first.id
    assert again.measured() == first.measured() == {"error": 0.2, "params": 5, "macs": 6, "robust_error": 0.4}
    assert first.status == "ok" and w.archive.get(first.id).seconds is not None


def _pair(method, tmp_path, options, objectives):
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "pair_support.py"), method, str(tmp_path),
                           json.dumps(options), objectives], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["exit"] == [0, 0], proc.stderr[-2000:]
    rows = [(key, enc) for _, _, key, enc, _ in res["rows"]]
    done = Counter((key, enc) for _, key, enc in res["marks"])
    assert len(rows) == len(set(rows)), res["rows"]  # rows = distinct candidates
    assert max(done.values()) == 1, done  # no candidate evaluated by both processes (nor twice by one)
    assert res["claims"] == []
    return res, set(rows), set(done)


def test_two_same_seed_lda_processes_evaluate_each_candidate_once(tmp_path):
    options = {"model": "vgg_tiny", "resolution": 12, "transfer_epochs": 5, "finetune_epochs": 1,
               "trace_images": 32, "max_batches": 2, "schedule_rounds": 1, "eta_start": 1.0, "lr": 0.1,
               "generations": 1, "pop_size": 4}
    res, rows, done = _pair("lda", tmp_path, options, "error,params")
    assert rows == done  # every row (unpruned, schedule, search) is one evaluation by one of the two
    assert any(enc == '["unpruned"]' for _, enc in rows) and any("schedule" in enc for _, enc in rows)


def test_two_same_seed_tascnet_processes_evaluate_each_candidate_once(tmp_path):
    options = {"model": "vgg_tiny", "resolution": "12", "pretrain_samples": "10", "pretrain_epochs": "1",
               "max_batches": "2", "generations": 1, "pop_size": 3}
    res, rows, done = _pair("tascnet", tmp_path, options, "error,macs")
    assert done <= rows
    # the rest are stage 2's intermediate networks, by-products of an evaluation that one process claimed
    assert all(key.endswith("-iter") for key, _ in rows - done), rows - done
    assert ("[1,0]" in {enc for _, enc in done}) and any('"iteration":0' in enc for _, enc in done)
