"""The human relevance criterion: pictures, decision files, prompts (seconds)."""

import json

import pytest
import torch

from natkit.core.task import Split, Task
from natkit.errors import ConfigError, NatkitError
from natkit.methods.progressive import method as P
from natkit.methods.progressive import process as PR
from natkit.methods.progressive import human as H
from natkit.nets import create_model
from natkit.train import TrainConfig

torch.set_num_threads(1)

LAYERS = [("features.0", 4), ("features.4", 6), ("features.7", 6)]


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.arange(n) % 3
        x = torch.rand(n, 1, 8, 8, generator=g)
        x[:, 0, :4, :4] += (y == 0).float().view(-1, 1, 1)
        return Split(x, y)

    return Task("toy", "toy", 3, split(60), split(30), split(30), class_names=["a", "b", "c"])


def _model():
    torch.manual_seed(0)
    return create_model("vgg", num_classes=3, in_channels=1, cfg=[4, "M", 6, 6, "M"], hidden=(8,))


def _rt():
    return PR.Retraining(TrainConfig(epochs=1, lr=1e-7, batch_size=30), resolution=8, channels=1)


def test_decision_file_is_honoured_exactly(task, tmp_path):
    f = tmp_path / "d.toml"
    f.write_text('[eliminate]\n"features.0" = [3, 1]\nconv3 = [0, 2, 5]\n')
    decisions = H.load_decisions(f, LAYERS)
    assert decisions == {0: [1, 3], 2: [0, 2, 5]}
    model = _model()
    originals = [l.module.weight.detach().clone() for l in PR.weight_layers(model) if l.is_conv]
    decider = H.HumanDecider(task, tmp_path / "human", decisions=decisions, per_class=2, resolution=8, channels=1)
    steps = PR.simplify(model, task, None, _rt(), decide=decider)
    assert [s.eliminated for s in steps] == [[1, 3], [], [0, 2, 5]]
    assert all(s.source == "human" for s in steps)
    convs = [l.module for l in PR.weight_layers(model) if l.is_conv]
    assert [c.out_channels for c in convs] == [2, 6, 3]
    # the surviving kernels are exactly the ones not listed (lr ~ 0 keeps them recognisable)
    assert torch.allclose(convs[0].weight, originals[0][[0, 2]], atol=1e-4)
    assert torch.allclose(convs[2].weight, originals[2][[1, 3, 4]][:, [0, 1, 2, 3, 4, 5]], atol=1e-4)
    recorded = json.loads((tmp_path / "human" / "decisions.json").read_text())["decisions"]
    assert [r["eliminate"] for r in recorded] == [[1, 3], [], [0, 2, 5]]
    assert all(r["from"] == "file" for r in recorded)
    for r in recorded:  # the sheet and the projection the decision was made on
        assert len(r["pictures"]) == 2
        for p in r["pictures"]:
            assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_json_decision_file(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"eliminate": {"conv2": [5, 0]}}))
    assert H.load_decisions(f, LAYERS) == {1: [0, 5]}


@pytest.mark.parametrize("text, match", [
    ('[eliminate\n"features.0" = [1]', "malformed"),
    ('"features.0" = [1]\n', "needs a table 'eliminate'"),
    ('[eliminate]\n"features.9" = [1]\n', "unknown layer 'features.9'"),
    ('[eliminate]\nconv4 = [1]\n', "unknown layer 'conv4'"),
    ('[eliminate]\n"features.0" = [4]\n', "no kernel 4"),
    ('[eliminate]\n"features.0" = [-1]\n', "no kernel -1"),
    ('[eliminate]\n"features.0" = ["a"]\n', "non-integer kernel 'a'"),
    ('[eliminate]\n"features.0" = [1.5]\n', "non-integer kernel 1.5"),
    ('[eliminate]\n"features.0" = 3\n', "needs a list"),
    ('[eliminate]\n"features.0" = [1, 1]\n', "twice"),
    ('[eliminate]\n"features.0" = [0, 1, 2, 3]\n', "keep at least one"),
    ('[eliminate]\n"features.0" = [1]\nconv1 = [2]\n', "given twice"),
    ('[eliminate]\n"features.0" = [1]\n[extra]\n', "unknown key 'extra'"),
])
def test_malformed_decision_file_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        H.load_decisions(f, LAYERS)
    assert isinstance(info.value, NatkitError) and "\n" not in str(info.value).strip()


def test_missing_decision_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        H.load_decisions(tmp_path / "nope.toml", LAYERS)


def test_interactive_prompt_retries_until_valid(task, tmp_path):
    answers = iter(["9", "x", "1, 2-3", "", "0-1,4"])
    printed = []
    decider = H.HumanDecider(task, tmp_path, input_fn=lambda _q: next(answers), print_fn=printed.append,
                             per_class=1, resolution=8, channels=1, pictures=False)
    steps = PR.simplify(_model(), task, None, _rt(), decide=decider)
    assert [s.eliminated for s in steps] == [[1, 2, 3], [], [0, 1, 4]]
    assert any("no kernel 9" in p for p in printed) and any("'x'" in p for p in printed)
    assert [r["from"] for r in decider.records] == ["prompt"] * 3


def test_no_terminal_and_no_file_is_a_clear_error(task, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(ConfigError, match="decisions="):
        H.HumanDecider(task, tmp_path)


def test_projection_groups_kernels_with_alike_profiles():
    profiles = torch.tensor([[1.0, 0, 1, 0], [2.0, 0, 2, 0], [0, 1.0, 0, 1], [0, 3.0, 0, 3]]).numpy()
    Z = H.kernel_projection(profiles, "pca")
    assert Z.shape == (4, 2)
    d = lambda i, j: float(((Z[i] - Z[j]) ** 2).sum())  # noqa: E731
    assert d(0, 1) < d(0, 2) and d(2, 3) < d(1, 3)
    with pytest.raises(ConfigError):
        H.kernel_projection(profiles, "umap")


def test_run_human_archives_each_new_state_and_records_decisions(task, tmp_path, make_ctx):
    ctx = make_ctx("progressive", task)
    archive, run_id = ctx.archive, ctx.run_id
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"eliminate": {"conv1": [0], "conv3": [1, 2]}}))
    base = _model()
    base.natkit_input = {"resolution": 8, "channels": 1}
    s = {"decisions": str(f), "images_per_class": 1, "projection": "pca"}
    H.run_human(ctx, base, _rt(), s)
    cands = archive.candidates(run_id=run_id)
    assert [c.encoding for c in cands] == [[[0], [], []], [[0], [], [1, 2]]]
    assert [c.extra["widths"] for c in cands] == [[3, 6, 6], [3, 6, 4]]
    assert all(c.method == "progressive" and c.extra["relevance"] == "human" for c in cands)
    assert [r["eliminate"] for r in cands[-1].extra["decisions"]] == [[0], [], [1, 2]]
    assert ctx.stats["final_candidate"] == cands[-1].id
    from natkit.core.chance import chance_level

    if chance_level(task).at_chance(cands[-1].error):  # an untrained toy: flagged, kept off the front
        assert cands[-1].extra["chance"] and cands[-1].test_error is None
    else:
        assert cands[-1].test_error is not None  # the run's front was reported on the test split


def test_cli_rejects_a_malformed_decision_file_before_training(tmp_path):
    import subprocess
    import sys
    import time

    bad = tmp_path / "bad.toml"
    bad.write_text('[eliminate]\n"features.0" = [99]\n')
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "natkit.cli", "search", "progressive", "--task", "digits", "--quick",
                           "--option", "relevance=human", "--option", f"decisions={bad}", "--out", str(tmp_path / "run"),
                           "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "error:" in last and "no kernel 99" in last and "Traceback" not in proc.stderr
    assert time.time() - t0 < 60
