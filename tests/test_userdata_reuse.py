"""The userdata benchmark's --reuse keeps an earlier launch's run only where that run can still export its
front (its stored models are there); a run without them, as in a fresh checkout, is made again."""

import json
import subprocess
import types

import benchmarks.userdata.run as U


def _fake(monkeypatch):
    calls = []
    real = subprocess.run

    def run(cmd, **kw):
        if "natkit.cli" not in cmd:  # git, for the row's commit
            return real(cmd, **kw)
        calls.append(cmd)
        return types.SimpleNamespace(returncode=0, stderr="", stdout="")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(U, "inspect", lambda run_dir, log: {"front_size": 0})
    return calls


def _finished(tmp_path, with_models: bool):
    d = tmp_path / "runs" / "width-quick"
    d.mkdir(parents=True)
    (d / "done.json").write_text(json.dumps({"method": "width", "mode": "quick", "exit_code": 0, "seconds": 1.0,
                                             "command": "natkit search width", "commit": "0" * 40}))
    (d / "log.txt").write_text("")
    if with_models:
        (d / "models" / "3").mkdir(parents=True)


def test_a_finished_run_with_its_models_is_reused(tmp_path, monkeypatch):
    calls = _fake(monkeypatch)
    _finished(tmp_path, with_models=True)
    row = U.run_method("width", "npz:x.npz", tmp_path, "quick", 0, 60, reuse=True)
    assert row.get("reused") is True and calls == [] and row["commit"] == "0" * 40


def test_a_finished_run_without_its_models_runs_again(tmp_path, monkeypatch):
    calls = _fake(monkeypatch)
    _finished(tmp_path, with_models=False)
    row = U.run_method("width", "npz:x.npz", tmp_path, "quick", 0, 60, reuse=True)
    assert "reused" not in row and len(calls) == 1 and "width" in calls[0]
    assert row["commit"] != "0" * 40


def test_a_run_records_the_commit_it_started_at(tmp_path, monkeypatch):
    """A commit made while a run is going must not be recorded as the run's code."""
    calls = _fake(monkeypatch)
    monkeypatch.setattr(U, "code_state", lambda root: {"commit": ("b" if calls else "a") * 40})  # HEAD moves mid-run
    row = U.run_method("width", "npz:x.npz", tmp_path, "quick", 0, 60)
    assert len(calls) == 1 and row["commit"] == "a" * 40
