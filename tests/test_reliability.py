"""Nothing repeated, nothing mixed: claims in a shared archive, numerics in the eval key, SIGKILL and
resume, two same-seed processes on one archive, and one front serially, with --threads and on Dask."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from natkit.core.archive import Archive
from natkit.core.budget import Budget
from natkit.core.evaluator import Evaluator
from natkit.core.problem import ArchiveProblem, make_eval_key
from natkit.core.space import SearchSpace

torch.set_num_threads(1)
FIG = Path(__file__).resolve().parents[1] / "benchmarks" / "reliability" / "figures.py"


def _figures():
    spec = importlib.util.spec_from_file_location("reliability_figures", FIG)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Space(SearchSpace):
    def __init__(self):
        self.xl, self.xu = np.zeros(2, dtype=int), np.full(2, 9, dtype=int)


class _Counting(Evaluator):
    """Records what it evaluated and under how many torch threads."""

    def __init__(self, delay=0.0):
        self.seen, self.threads, self.delay = [], [], delay

    def _evaluate(self, encoding):
        self.seen.append(list(encoding))
        self.threads.append(torch.get_num_threads())
        time.sleep(self.delay)
        return {"error": sum(encoding) / 100, "macs": 1 + encoding[0]}, None, {}


def _problem(archive, ev, key="k"):
    run = archive.start_run("test", "t", {}, 0)
    return ArchiveProblem(_Space(), ev, ["error", "macs"], Budget({}), archive, run, "test", key)


def test_a_candidate_claimed_by_a_live_process_is_waited_for_and_read_back(tmp_path):
    path = tmp_path / "a.sqlite"
    other = Archive(path)
    assert other.claim("k", [1, 1]) == ("mine", None)
    ev = _Counting()
    result = {}

    def search():  # another process's view: its own connection, in its own thread
        prob = _problem(Archive(path), ev)
        result["out"] = prob.metrics_for([[1, 1], [2, 2]])
        result["counts"] = prob.n_real, prob.n_read_back

    t = threading.Thread(target=search)
    t.start()
    time.sleep(1.0)
    assert ev.seen == [[2, 2]] and t.is_alive()  # did its own candidate, now waits for the claimed one
    run = other.start_run("other", "t", {}, 0)
    other.add(run, "other", generation=0, encoding=[1, 1], metrics={"error": 0.5, "macs": 7}, eval_key="k")
    t.join(10)
    assert ev.seen == [[2, 2]]  # never evaluated the other's candidate
    assert result["out"][0] == ({"error": 0.5, "params": None, "macs": 7.0, "latency_ms": None}, "ok")
    assert result["counts"] == (1, 1)
    assert other.claims() == []


def test_stale_and_dead_claims_are_taken_over(tmp_path):
    path = tmp_path / "a.sqlite"
    a = Archive(path, claim_timeout=2.0)
    db = a._db
    now = time.time()
    db.execute("INSERT INTO claims VALUES ('k', '[3,3]', 'far-away-host:1:x', ?)", (now - 60,))  # no heartbeat
    db.execute("INSERT INTO claims VALUES ('k', '[4,4]', ?, ?)", (f"{socket.gethostname()}:999999999:x", now))
    db.execute("INSERT INTO claims VALUES ('k', '[5,5]', 'far-away-host:1:y', ?)", (now,))  # alive, remote
    assert a.claim("k", [3, 3]) == ("mine", None)
    assert a.claim("k", [4, 4]) == ("mine", None)  # its owner's pid is gone on this host
    assert a.claim("k", [5, 5]) == ("other", "far-away-host:1:y")
    ev = _Counting()
    prob = _problem(a, ev)
    out = prob.metrics_for([[5, 5]])  # waits until the remote claim goes stale (2 s), then evaluates it
    assert ev.seen == [[5, 5]] and out[0][1] == "ok"


def test_a_heartbeat_keeps_a_long_evaluation_claimed(tmp_path):
    path = tmp_path / "a.sqlite"
    a = Archive(path, claim_timeout=1.2)
    assert a.claim("k", [1, 2]) == ("mine", None)
    time.sleep(2.0)  # longer than the timeout: only the heartbeat keeps the claim alive
    b = Archive(path, claim_timeout=1.2)
    assert b.claim("k", [1, 2])[0] == "other"
    a.close()
    time.sleep(1.5)
    assert b.claim("k", [1, 2]) == ("mine", None)


def test_a_finished_result_is_never_stored_twice(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("m", "t", {}, 0)
    first = a.add(run, "m", generation=0, encoding=[1], metrics={"error": 0.1, "macs": 2}, eval_key="k")
    again = a.add(run, "m", generation=1, encoding=[1], metrics={"error": 0.3, "macs": 2}, eval_key="k")
    failed = a.add(run, "m", generation=1, encoding=[1], metrics={}, status="failed", eval_key="k")
    other_key = a.add(run, "m", generation=1, encoding=[1], metrics={"error": 0.2, "macs": 2}, eval_key="k2")
    assert again == first and failed != first and other_key != first
    assert [c.error for c in a.candidates(status="ok")] == [0.1, 0.2]


def test_the_eval_key_holds_the_numerics_and_evaluations_run_under_fixed_threads(tmp_path):
    from natkit.core.numerics import set_eval_threads

    try:
        base = make_eval_key("digits", "width", {"a": 1})
        set_eval_threads(2)
        two = make_eval_key("digits", "width", {"a": 1})
        assert two != base
        assert make_eval_key("digits", "width", {"a": 1}, device="cuda") != two
        torch.use_deterministic_algorithms(True)
        try:
            assert make_eval_key("digits", "width", {"a": 1}) != two
        finally:
            torch.use_deterministic_algorithms(False)
        ev = _Counting()
        prob = _problem(Archive(tmp_path / "a.sqlite"), ev)
        torch.set_num_threads(1)
        prob.metrics_for([[1, 2]])
        assert ev.threads == [2] and torch.get_num_threads() == 1  # fixed inside, restored after
    finally:
        set_eval_threads(None)
        torch.set_num_threads(1)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["width", "lda", "nat"])
def test_sigkill_at_random_moments_then_resume_repeats_nothing(tmp_path, method):
    res = _figures().sigkill_scenario(method, tmp_path)
    assert res["kills_inside_search"] > 0, res
    assert res["final_exit"] == 0, res
    assert res["repeated_rows"] == 0 and res["lost_rows"] == 0, res
    assert res["same_results_as_reference"] and res["same_front_as_reference"], res


@pytest.mark.slow
def test_two_same_seed_processes_evaluate_each_candidate_once(tmp_path):
    # evaluations long enough that the second process starts before the first has done them all, even on a
    # loaded CI host (max_batches=6 let one process finish everything first under pytest-xdist load)
    res = _figures().concurrency_scenario(tmp_path, max_batches=20, rounds=1)
    assert res["exit_codes"] == [[0, 0]], res
    assert res["rows"] == res["distinct"] == res["solo_rows"], res
    assert all(n > 0 for n in res["evaluated_per_process"][0]), res  # the pair split the work
    assert [sum(res["evaluated_per_process"][0])] == res["rows"], res
    assert res["same_front_as_solo"] == [True], res


@pytest.mark.slow
def test_same_seed_same_front_serially_with_threads_and_on_dask_workers(tmp_path):
    pytest.importorskip("distributed")
    fig = _figures()
    fronts = {}
    for name, extra in (("serial", []), ("threads1", ["--threads", "1"]), ("workers2", ["--workers", "2"])):
        cmd = fig.search_cmd("width", tmp_path / name, tmp_path, *extra)
        if name == "serial":
            cmd = cmd[:cmd.index("--threads")] + cmd[cmd.index("--threads") + 2:]  # torch's default threads
        done, _ = fig.run(cmd)
        assert done.returncode == 0, done.stderr[-800:]
        fronts[name] = fig.front(tmp_path / name / "archive.sqlite", "width")
        assert fronts[name]
    assert fronts["serial"] == fronts["threads1"] == fronts["workers2"], json.dumps(fronts, indent=1)


def test_archives_made_before_the_marker_still_open(tmp_path, capsys):
    import hashlib
    import sqlite3

    from natkit.cli import main
    from natkit.core import archive as A

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(A._SCHEMA)  # schema 1 as natkit wrote it before the application id and claims
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO runs (method, task, config, seed) VALUES ('width', 'digits', '{}', 0)")
    db.execute("INSERT INTO candidates (run_id, method, generation, eval_key, encoding, error, macs, status) "
               "VALUES (1, 'width', 0, 'k', '[1]', 0.1, 5, 'ok')")
    db.commit()
    db.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["front", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == 0.1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # reading never marks or migrates
    a = Archive(path)  # writing does: natkit's own file gets the marker and the claims table
    assert a.claim("k", [2]) == ("mine", None) and a.lookup("k", [1]).error == 0.1
    assert a._db.execute("PRAGMA application_id").fetchone()[0] == A.APPLICATION_ID
