"""`--weights`: the user's source network replaces natkit's pretraining for every method that starts from one
(lda, tascnet, progressive); the others refuse it with a reason before any work."""

from __future__ import annotations

import json

import pytest
import torch

from natkit.api import WEIGHTS_METHODS
from natkit.cli import main
from natkit.methods import METHODS

torch.set_num_threads(1)


def _weights(tmp_path, name="vgg_tiny"):
    from safetensors.torch import save_file

    from natkit.nets import create_model

    model = create_model(name, num_classes=10, in_channels=1)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model


def _no_pretraining(monkeypatch):
    import natkit.train

    def refuse(*a, **k):
        raise AssertionError("pretrained() was called although --weights was given")

    monkeypatch.setattr(natkit.train, "pretrained", refuse)


def test_every_method_either_takes_weights_or_says_why_not(tmp_path, capsys):
    path, _ = _weights(tmp_path)
    assert set(WEIGHTS_METHODS) < set(METHODS)
    from natkit.methods import get_method

    for m in sorted(set(METHODS) - set(WEIGHTS_METHODS)):
        table = ["--task", "table:nas-bench-macro"] if getattr(get_method(m), "TABLE_ONLY", False) else []
        code = main(["search", m, *table, "--out", str(tmp_path / m), "--weights", str(path), "--quick", "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and f"{m} does not use --weights:" in err, err
        assert not (tmp_path / m).exists()


def test_progressive_starts_from_the_weights_file(tmp_path, monkeypatch, make_ctx):
    from natkit.data import load_task
    from natkit.methods.progressive import method as P

    path, src = _weights(tmp_path)
    _no_pretraining(monkeypatch)
    task = load_task("digits", seed=0, samples_per_class=10)
    ctx = make_ctx("progressive", task, options={"weights": str(path), "model": "vgg_tiny", "resolution": 16,
                                                 "finetune_epochs": 1, "finetune_max_batches": 1})
    s = P.settings_from(ctx)
    model = P.trained_base(ctx, s, log=False)
    assert model.natkit_source["path"] == str(path)
    # the trunk is the file's (one fine-tuning batch moves it only slightly), not a fresh or pretrained one
    a, b = model.features[0].weight.detach(), src.features[0].weight.detach()
    assert (a - b).abs().mean() < 0.2 * b.abs().mean()


@pytest.mark.slow
def test_lda_search_runs_from_the_weights_file(tmp_path):
    import os
    import subprocess
    import sys

    path, _ = _weights(tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    cmd = [sys.executable, "-m", "natkit.cli", "search", "lda", "--task", "digits", "--quick", "--out", str(out),
           "--threads", "1", "-q", "--weights", str(path), "--samples-per-class", "20", "--option", "model=vgg_tiny",
           "--option", "resolution=16", "--option", "transfer_epochs=3", "--option", "finetune_epochs=1",
           "--option", "trace_images=64", "--option", "lr=0.1", "--option", "schedule_rounds=1"]
    done = subprocess.run(cmd, env={**os.environ, "NATKIT_CACHE": str(cache)}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-1500:]
    run = json.loads((out / "run.json").read_text())
    assert run["stats"]["base"]["source"]["path"] == str(path)
    assert not cache.exists() or not any(cache.rglob("*.safetensors"))  # nothing was pretrained
