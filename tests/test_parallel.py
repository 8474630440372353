"""The Dask runner: same results as in-process, shared state sent once, failures contained."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest
import torch

from natkit.core.archive import Archive
from natkit.core.budget import Budget
from natkit.core.evaluator import Evaluator
from natkit.core.problem import ArchiveProblem, SerialRunner
from natkit.errors import ConfigError, NatkitError

torch.set_num_threads(1)
pytest.importorskip("distributed")

from natkit.core.parallel import dask_runner  # noqa: E402


class WeightedSum(Evaluator):
    """Deterministic, with 'large' shared state: metrics depend on the weights the evaluator carries."""

    def __init__(self, n=4, size=200_000, delay=0.0, device="cpu"):
        self.weights = torch.arange(size, dtype=torch.float32) / size
        self.n, self.delay, self.device = n, delay, device

    def _evaluate(self, encoding):
        if self.delay:
            time.sleep(self.delay * (1 + encoding[0]))
        s = float(self.weights[: 1000 * (1 + sum(encoding))].sum())
        return {"error": 1.0 / (1.0 + s), "params": float(sum(encoding) + 1), "macs": float(encoding[0] + 1)}, \
            {"enc": list(encoding)}, {"pid": os.getpid()}


class Crashes(WeightedSum):
    """An exception the evaluator base does not absorb (a bug in a method): retried, then ``failed``."""

    def _evaluate(self, encoding):
        if encoding[0] == 3:
            raise KeyError(f"boom on {encoding}")
        return super()._evaluate(encoding)


class KillsItsWorker(WeightedSum):
    """Hard-kills the worker process that evaluates encoding [3, ...]: always, or only the first time."""

    def __init__(self, marker=None, **kw):
        super().__init__(**kw)
        self.marker = marker

    def _evaluate(self, encoding):
        if encoding[0] == 3 and (self.marker is None or not os.path.exists(self.marker)):
            if self.marker:
                open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return super()._evaluate(encoding)


class Space:
    n_var = 2
    xl = np.array([0, 0])
    xu = np.array([3, 3])

    def repair(self, x):
        return [int(v) for v in np.clip(np.rint(x), self.xl, self.xu)]


ENCODINGS = [[0, 1], [1, 2], [2, 0], [3, 3], [1, 1], [0, 0]]


@pytest.fixture(scope="module")
def runner():
    r, close = dask_runner(workers=2, retries=1)
    yield r
    close()


def _serial(ev, encs):
    return dict(SerialRunner().map(ev, encs))


def test_same_results_as_in_process_and_state_sent_once(runner):
    ev = WeightedSum()
    got = dict(runner.map(ev, ENCODINGS))
    want = _serial(ev, ENCODINGS)
    assert sorted(got) == list(range(len(ENCODINGS)))
    for i in want:
        assert got[i].status == "ok" and got[i].metrics == want[i].metrics and got[i].arch == want[i].arch
    pids = {r.extra["pid"] for r in got.values()}
    assert os.getpid() not in pids  # evaluated in worker processes, not here
    shares = runner.shares
    got2 = dict(runner.map(ev, ENCODINGS[::-1]))  # a second generation: nothing is sent again
    assert runner.shares == shares
    assert got2[0].metrics == want[len(ENCODINGS) - 1].metrics
    stats = runner.worker_stats()
    # every worker unpickled the evaluator exactly once, however many candidates it then ran
    assert len(stats) == 2 and runner.shares == 1
    assert all(s["loads"] == 1 and s["cached"] == [runner._token] for s in stats.values())
    assert sum(s["evals"] for s in stats.values()) == 2 * len(ENCODINGS)


def test_changed_shared_state_is_sent_again(runner):
    ev = WeightedSum()
    before = dict(runner.map(ev, ENCODINGS[:2]))
    n = runner.shares
    ev.weights = ev.weights * 2  # e.g. NAT adapting its supernet between iterations
    after = dict(runner.map(ev, ENCODINGS[:2]))
    assert runner.shares == n + 1
    assert after[0].metrics["error"] != before[0].metrics["error"]
    assert after[0].metrics == _serial(ev, ENCODINGS[:1])[0].metrics


def test_results_arrive_in_completion_order(runner):
    ev = WeightedSum(delay=0.5)  # [3, 0] takes 2 s, the others 0.5 s
    order = [i for i, _ in runner.map(ev, [[3, 0], [0, 0], [0, 1], [0, 2]])]
    assert sorted(order) == [0, 1, 2, 3]
    assert order[0] != 0  # the slow candidate was submitted first, yet a fast one came back first


def test_escaping_exception_is_retried_then_failed(runner):
    got = dict(runner.map(Crashes(), ENCODINGS))
    assert got[3].status == "failed" and "KeyError" in got[3].message and "[3, 3]" in got[3].message
    assert all(got[i].status == "ok" for i in got if i != 3)


def test_archive_problem_on_dask_archives_each_result_once(runner, tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    run_id = archive.start_run("test", "none", {}, 0)
    prob = ArchiveProblem(Space(), Crashes(), ["error", "macs"], Budget({}), archive, run_id, "test", "k",
                          runner=runner)
    out = {}
    prob._evaluate(np.array(ENCODINGS + [[0, 1]]), out)  # a duplicate inside the population
    cands = archive.candidates(run_id=run_id)
    assert len(cands) == len(ENCODINGS) == prob.n_real
    assert sorted(c.encoding for c in cands) == sorted(ENCODINGS)
    assert [c.status for c in cands if c.encoding == [3, 3]] == ["failed"]
    assert out["F"].shape == (len(ENCODINGS) + 1, 2) and out["F"][3, 0] == 1.0
    prob._evaluate(np.array(ENCODINGS), out)  # the next generation reads ok results back
    assert len(archive.candidates(run_id=run_id)) == len(ENCODINGS) + 1  # only the failed one re-ran


@pytest.mark.slow  # starts a second cluster
def test_gpu_work_goes_to_workers_with_a_gpu_resource(runner):
    with pytest.raises(ConfigError, match="GPU"):
        list(runner.map(WeightedSum(device="cuda"), ENCODINGS[:1]))
    gpu_runner, close = dask_runner(workers=1, gpus=True)
    try:
        got = dict(gpu_runner.map(WeightedSum(device="cuda:0"), ENCODINGS[:2]))
        assert all(r.status == "ok" for r in got.values())
        info = gpu_runner.client.scheduler_info()["workers"]
        assert all(w["resources"].get("GPU") == 1 for w in info.values())
    finally:
        close()


def test_bad_arguments_and_missing_dask(monkeypatch):
    with pytest.raises(ConfigError, match="-2"):
        dask_runner(workers=-2)
    with pytest.raises(ConfigError, match="not both"):
        dask_runner(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(NatkitError, match="tcp://127.0.0.1:9"):
        dask_runner(scheduler="tcp://127.0.0.1:9", timeout=2)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(NatkitError, match=r"pip install natkit\[distributed\]"):
        dask_runner(workers=2)


def test_cli_reports_missing_dask_in_one_line(monkeypatch, tmp_path, capsys):
    from natkit.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    code = main(["search", "width", "--task", "digits", "--quick", "--out", str(tmp_path / "r"), "--workers", "2",
                 "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "natkit[distributed]" in err


@pytest.mark.slow
def test_worker_killed_once_is_retried_and_killed_always_fails(tmp_path):
    r, close = dask_runner(workers=2, retries=1)
    try:
        once = dict(r.map(KillsItsWorker(marker=str(tmp_path / "killed")), ENCODINGS))
        assert (tmp_path / "killed").exists()  # the worker really died once
        assert all(res.status == "ok" for res in once.values())
        always = dict(r.map(KillsItsWorker(), ENCODINGS))
        assert always[3].status == "failed" and "worker died" in always[3].message
        assert all(always[i].status == "ok" for i in always if i != 3)
    finally:
        close()



class HoldsAConnection(WeightedSum):
    def __init__(self, path):
        super().__init__(size=10)
        import sqlite3

        self.db = sqlite3.connect(path)


def test_an_evaluator_that_cannot_travel_is_a_clear_error(runner, tmp_path):
    with pytest.raises(NatkitError, match="HoldsAConnection.*cannot be sent"):
        list(runner.map(HoldsAConnection(tmp_path / "x.sqlite"), ENCODINGS[:1]))


def test_each_local_worker_gets_its_share_of_the_cores(runner):
    from natkit.core.parallel import worker_threads

    assert [worker_threads(w, 2) for w in (1, 2, 4)] == [2, 1, 1]
    assert worker_threads(2, 8) == 4
    runner.map(WeightedSum(), ENCODINGS[:2]).__next__()  # the plugin (and the thread count) is installed
    expected = worker_threads(2)
    threads = runner.client.run(lambda: __import__("torch").get_num_threads())
    assert set(threads.values()) == {expected} and runner.threads == expected
    env = runner.client.run(lambda: __import__("os").environ.get("MALLOC_ARENA_MAX"))
    assert set(env.values()) == {"1"}
