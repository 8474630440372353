"""NAT's --resume: an interrupted search continues after its last finished iteration and ends with the
archive and front of an uninterrupted run; a damaged checkpoint is a one-line error (exit 2)."""

import json

import pytest
import torch

from natkit import cli
from natkit.core.archive import Archive
from natkit.methods.nat import method as nat

from test_nat_loop import TINY_TOML

torch.set_num_threads(1)
# test_nat_loop's tiny supernet, pretrained and warmed up longer (2 + 3 epochs instead of 0.5 + 0.2) and
# measured on every val image: chance is judged on the images measured, and with the tiny settings or on
# val_limit = 60 every candidate stays within noise of chance (the run then exits 3)
RESUME_TOML = TINY_TOML.replace("warmup_epochs = 0.5\nepochs = 0.5", "warmup_epochs = 0.5\nepochs = 2").replace(
    "warmup_epochs = 0.2", "warmup_epochs = 3").replace("val_limit = 60\n", "")
assert RESUME_TOML.count("epochs = 2") == 1 and "warmup_epochs = 3\n" in RESUME_TOML and "val_limit" not in RESUME_TOML


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("NATKIT_CACHE", str(tmp_path / "cache"))
    space = tmp_path / "nat_tiny.toml"
    space.write_text(RESUME_TOML)

    def search(name, *extra):
        return cli.main(["search", "nat", "--task", "digits", "--samples-per-class", "15", "--source", "digits",
                         "--space", str(space), "--out", str(tmp_path / name), "--seed", "0", "--quiet", *extra])

    return tmp_path, search


def _rows(out):
    archive = Archive(out / "archive.sqlite")
    return [(c.generation, c.encoding, round(c.error, 9), c.macs, c.status, bool(c.extra.get("reevaluation")))
            for c in archive.candidates()]


def _front(out):
    archive = Archive(out / "archive.sqlite")
    return [(c.encoding, round(c.error, 9), c.macs) for c in archive.front(("error", "macs"))]


def _interrupt_in_iteration(monkeypatch, iteration: int):
    """A Ctrl-C during iteration ``iteration``'s adaptation, after its new subnets were archived."""
    calls = {"n": 0}
    adapt = nat.NATLoop.adapt

    def adapt_then_stop(self, epochs, genomes, seed):
        calls["n"] += 1
        if calls["n"] == iteration + 1:  # the first call is the warm-up
            raise KeyboardInterrupt
        return adapt(self, epochs, genomes, seed)

    monkeypatch.setattr(nat.NATLoop, "adapt", adapt_then_stop)


def test_interrupted_then_resumed_equals_uninterrupted(tiny, monkeypatch):
    tmp, search = tiny
    assert search("full") == 0
    with monkeypatch.context() as m:
        _interrupt_in_iteration(m, 2)
        assert search("cut") == 130
    state = json.loads((tmp / "cut" / "nat_state" / "state.json").read_text())
    assert state["iteration"] == 1 and state["supernet_version"] == 2  # warm-up + iteration 1
    assert [p.name for p in (tmp / "cut" / "nat_state").glob("*.safetensors")] == ["supernet-1.safetensors"]
    archived_before = len(_rows(tmp / "cut"))
    assert archived_before > len([r for r in _rows(tmp / "cut") if r[0] <= 1])  # iteration 2 had begun

    calls = {"evaluate": 0}
    evaluate = nat.InPlaceEvaluator.evaluate

    def counting(self, encoding):
        calls["evaluate"] += 1
        return evaluate(self, encoding)

    monkeypatch.setattr(nat.InPlaceEvaluator, "evaluate", counting)
    assert search("cut", "--resume") == 0
    # the resumed run did not redo iteration 1, nor the subnets iteration 2 had archived before the stop
    full = _rows(tmp / "full")
    assert calls["evaluate"] == len(full) - archived_before
    assert _rows(tmp / "cut") == full
    assert _front(tmp / "cut") == _front(tmp / "full") and _front(tmp / "full")
    log = json.loads((tmp / "cut" / "nat_log.json").read_text())["iterations"]
    assert [e["iteration"] for e in log] == [0, 1, 2]


def test_damaged_checkpoint_is_a_one_line_error(tiny, monkeypatch, capsys):
    tmp, search = tiny
    with monkeypatch.context() as m:
        _interrupt_in_iteration(m, 2)
        assert search("run") == 130
    state_dir = tmp / "run" / "nat_state"
    weights = state_dir / "supernet-1.safetensors"
    good = weights.read_bytes()

    def resume_error():
        capsys.readouterr()
        assert search("run", "--resume") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    weights.write_bytes(good[: len(good) // 2])  # truncated by a full disk, say
    assert "supernet checkpoint" in resume_error()
    weights.unlink()
    assert "is missing" in resume_error()
    weights.write_bytes(good)
    state = state_dir / "state.json"
    text = state.read_text()
    state.write_text(text[: len(text) // 2])
    assert "corrupt checkpoint" in resume_error()
    state.unlink()
    assert "checkpoint" in resume_error() and "missing" in resume_error()


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_equals_uninterrupted(tiny):
    """The real thing: a `natkit search nat` process SIGKILLed once iteration 1's checkpoint is on
    disk (wherever iteration 2 happens to be), then resumed from the command line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, search = tiny
    assert search("full") == 0  # also pretrains and caches the supernet for the subprocesses
    space = tmp / "nat_tiny.toml"
    cmd = [sys.executable, "-m", "natkit.cli", "search", "nat", "--task", "digits", "--samples-per-class", "15",
           "--source", "digits", "--space", str(space), "--out", str(tmp / "killed"), "--seed", "0", "-q",
           "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp / "killed" / "nat_state" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["iteration"] >= 1:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _rows(tmp / "killed") == _rows(tmp / "full")
    assert _front(tmp / "killed") == _front(tmp / "full")
