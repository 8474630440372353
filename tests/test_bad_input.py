"""Bad input through the CLI and the Python API: exit 2, one line naming the bad value, archive intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from natkit.cli import main
from natkit.errors import ConfigError, DataError, NatkitError, WeightsError

torch.set_num_threads(1)

SPACE = """[space]
family = "vgg_widths"
layers = 2
pool_after = [1, 2]
choices = {choices}
hidden = 16
resolution = 8
{extra_space}
[train]
epochs = 3
lr = {lr}
batch_size = 64
{extra_train}"""

FAST = ["--task", "digits", "--quick", "--generations", "1", "--pop-size", "3", "--threads", "1", "-q"]


def space_toml(tmp_path: Path, name="space.toml", choices="[4, 8, 16]", lr="0.2", extra_space="", extra_train=""):
    p = tmp_path / name
    p.write_text(SPACE.format(choices=choices, lr=lr, extra_space=extra_space, extra_train=extra_train))
    return p


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A task archive holding one finished search: every bad input below must leave it intact."""
    d = tmp_path_factory.mktemp("shared")
    space = space_toml(d)
    archive = d / "task.sqlite"
    assert main(["search", "width", "--out", str(d / "good"), "--archive", str(archive), "--space", str(space),
                 *FAST]) == 0
    return d, archive, space


def snapshot(archive: Path) -> tuple[list, list]:
    db = sqlite3.connect(archive)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        cands = db.execute("SELECT * FROM candidates ORDER BY id").fetchall()
        runs = db.execute("SELECT id, method, task, config, status FROM runs ORDER BY id").fetchall()
    finally:
        db.close()
    return cands, runs


def assert_intact(archive: Path, before) -> None:
    """Earlier candidates and runs unchanged; a run the bad input started holds nothing and is closed."""
    cands, runs = snapshot(archive)
    assert cands == before[0]
    assert runs[: len(before[1])] == before[1]
    assert all(r[4] == "interrupted" for r in runs[len(before[1]):]), runs


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def expect_cli_error(capsys, argv, *needles, shared=None):
    """Exit 2, exactly one line on stderr, no traceback, naming each needle; archive untouched."""
    before = snapshot(shared) if shared else None
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # "[method] ..." lines are progress
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    if shared:
        assert_intact(shared, before)
    return lines[0]


# --- TOML: malformed and semantically wrong -------------------------------------------------------
@pytest.mark.parametrize("kind, kwargs, needles", [
    ("syntax", None, ["malformed TOML"]),
    ("unknown space key", dict(extra_space="widht = 3"), ["'widht'"]),
    ("unknown train key", dict(extra_train="epoch = 3"), ["'epoch'"]),
    ("negative width", dict(choices="[4, -8]"), ["-8"]),
    ("empty choices", dict(choices="[]"), ["choices", "[]"]),
    ("width as text", dict(choices='[4, "wide"]'), ["'wide'"]),
    ("negative lr", dict(lr="-0.5"), ["-0.5"]),
])
def test_bad_space_toml(tmp_path, capsys, shared, kind, kwargs, needles):
    _, archive, _ = shared
    if kwargs is None:
        p = tmp_path / "broken.toml"
        p.write_text("[space\nlayers = = 2\n")
        needles = needles + [str(p)]
    else:
        p = space_toml(tmp_path, **kwargs)
    expect_cli_error(capsys, ["search", "width", "--out", tmp_path / "o", "--archive", archive, "--space", p, *FAST],
                     *needles, shared=archive)


@pytest.mark.parametrize("body, needles", [
    ("[budget]\nmacs = -5\n", ["macs", "-5"]),
    ("[budget]\nflops = 1e6\n", ["'flops'"]),
    ("[limits]\nmacs = 1e6\n", ["no [budget] table"]),
    ("[budget]\nmacs = \"small\"\n", ["'small'"]),
])
def test_bad_budget_toml(tmp_path, capsys, shared, body, needles):
    _, archive, space = shared
    b = tmp_path / "budget.toml"
    b.write_text(body)
    expect_cli_error(capsys, ["search", "width", "--out", tmp_path / "o", "--archive", archive, "--space", space,
                              "--budget", b, *FAST], *needles, shared=archive)


# --- unknown names, bad numbers on the command line ------------------------------------------------
@pytest.mark.parametrize("argv, needles", [
    (["search", "alexnet"], ["'alexnet'"]),
    (["search", "width", "--task", "mnist-typo"], ["'mnist-typo'"]),
    (["search", "width", "--objectives", "error,flops"], ["'flops'"]),
    (["search", "width", "--objectives", "error"], ["'error'"]),
    (["search", "width", "--space", "no_such_space"], ["'no_such_space'"]),
    (["search", "width", "--classes", "1,42"], ["42"]),
    (["search", "width", "--generations", "0"], ["--generations", "0"]),
    (["search", "width", "--workers", "-1"], ["-1"]),
    (["search", "width", "--option", "lr"], ["'lr'"]),
    (["search", "width", "--option", "epochs=many"], ["'many'"]),
    (["search", "width", "--device", "cuda:7"], ["'cuda:7'"]),
    (["search", "width", "--samples-per-class", "-3"], ["-3"]),
])
def test_bad_command_line(tmp_path, capsys, shared, argv, needles):
    _, archive, space = shared
    if argv[-1] == "cuda:7" and torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    base = ["--out", tmp_path / "o", "--archive", archive, "--quick", "--pop-size", "3", "-q"]
    base += [] if "--space" in argv else ["--space", space]
    base += [] if "--generations" in argv else ["--generations", "1"]
    expect_cli_error(capsys, argv + base, *needles, shared=archive)


def test_resume_without_a_run_and_a_missing_run_directory(tmp_path, capsys):
    expect_cli_error(capsys, ["search", "width", "--out", tmp_path / "none", "--resume"], "run.json")
    expect_cli_error(capsys, ["front", tmp_path / "nowhere"], str(tmp_path / "nowhere"))
    expect_cli_error(capsys, ["plot", tmp_path / "nowhere"], str(tmp_path / "nowhere"))


def test_corrupt_archive_file_is_reported_not_overwritten(tmp_path, capsys):
    bad = tmp_path / "archive.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    expect_cli_error(capsys, ["front", bad], str(bad))
    expect_cli_error(capsys, ["search", "width", "--out", tmp_path / "o", "--archive", bad, *FAST], str(bad))
    assert bad.read_bytes() == before


# --- datasets ---------------------------------------------------------------------------------------
def _npz(tmp_path, name, **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def _images(n=60, shape=(8, 8)):
    return np.random.default_rng(0).random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name, arrays, needles", [
    ("noy.npz", dict(x=_images()), ["'y'"]),
    ("nox.npz", dict(images=_images(), y=np.arange(60) % 3), ["'x'"]),
    ("flat.npz", dict(x=np.zeros((60, 64), np.float32), y=np.arange(60) % 3), ["(60, 64)"]),
    ("channels.npz", dict(x=np.zeros((60, 5, 8, 8), np.float32), y=np.arange(60) % 3), ["(60, 5, 8, 8)"]),
    ("neg.npz", dict(x=_images(), y=np.r_[np.arange(59) % 3, -4]), ["-4"]),
    ("gap.npz", dict(x=_images(), y=np.r_[np.arange(59) % 3, 9]), ["class 3"]),
    ("short.npz", dict(x=_images(), y=np.arange(50) % 3), ["60", "(50,)"]),
    ("nan.npz", dict(x=np.full((60, 8, 8), np.nan, np.float32), y=np.arange(60) % 3), ["NaN"]),
    ("floaty.npz", dict(x=_images(), y=np.linspace(0, 2.5, 60)), ["float64"]),
])
def test_bad_npz_dataset(tmp_path, capsys, shared, name, arrays, needles):
    _, archive, space = shared
    p = _npz(tmp_path, name, **arrays)
    line = expect_cli_error(capsys, ["search", "width", "--task", f"npz:{p}", "--out", tmp_path / "o", "--archive",
                                     archive, "--space", space, "--quick", "-q"], *needles, shared=archive)
    assert str(p) in line
    from natkit.data import load_task

    with pytest.raises(DataError):
        load_task(f"npz:{p}")


def test_missing_and_corrupt_npz_and_image_folder(tmp_path, capsys):
    expect_cli_error(capsys, ["search", "width", "--task", f"npz:{tmp_path}/absent.npz", "--out", tmp_path / "o"],
                     "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    expect_cli_error(capsys, ["search", "width", "--task", f"npz:{junk}", "--out", tmp_path / "o"], "junk.npz")
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([object()] * 4, dtype=object), y=np.arange(4))
    expect_cli_error(capsys, ["search", "width", "--task", f"npz:{pickled}", "--out", tmp_path / "o"],
                     "objects.npz")
    folder = tmp_path / "imgs"
    (folder / "cat").mkdir(parents=True)
    (folder / "dog").mkdir()
    (folder / "cat" / "a.png").write_bytes(b"not a png")
    (folder / "dog" / "b.png").write_bytes(b"not a png either")
    expect_cli_error(capsys, ["search", "width", "--task", f"folder:{folder}", "--out", tmp_path / "o"], "a.png")


# --- weights files ------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this would create a file: proof that weights are never unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _saved_model(tmp_path, name="vgg_tiny"):
    from natkit.nets import create_model
    from natkit.nets.io import save_model

    model = create_model(name, num_classes=10, in_channels=1)
    return model, save_model(model, tmp_path / name)


def test_weights_missing_corrupt_pickled_and_for_another_architecture(tmp_path):
    from natkit.nets.io import load_model, load_state_dict_file

    with pytest.raises(WeightsError, match="absent.pt"):
        load_state_dict_file(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04 garbage" * 10)
    with pytest.raises(WeightsError, match="corrupt.pt"):
        load_state_dict_file(corrupt)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        load_state_dict_file(bad_st)
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": _Payload(marker)}, evil)
    with pytest.raises(WeightsError, match="evil.pt"):
        load_state_dict_file(evil)
    assert not marker.exists()  # weights_only refused the object; nothing ran
    _, vgg_dir = _saved_model(tmp_path, "vgg_tiny")
    _, res_dir = _saved_model(tmp_path, "resnet_tiny")
    (vgg_dir / "weights.safetensors").write_bytes((res_dir / "weights.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="vgg_tiny"):
        load_model(vgg_dir)
    from natkit.nets import create_model

    with pytest.raises(WeightsError, match="corrupt.pt"):
        create_model("tv_resnet50", num_classes=10, in_channels=3, weights=str(corrupt))


def test_export_of_a_candidate_with_bad_weights_exits_2(tmp_path, capsys, shared):
    d, archive, _ = shared
    good = d / "good"
    front = [c for c in _archive(archive).candidates(status="ok") if (good / "models" / str(c.id)).is_dir()]
    assert front
    cid = front[0].id
    wfile = good / "models" / str(cid) / "weights.safetensors"
    original = wfile.read_bytes()
    try:
        wfile.write_bytes(original[: len(original) // 3])  # truncated download
        expect_cli_error(capsys, ["export", good, "--id", cid, "--out", tmp_path / "e"], "weights.safetensors",
                         shared=archive)
        expect_cli_error(capsys, ["export", good, "--id", 999999], "999999", shared=archive)
    finally:
        wfile.write_bytes(original)
    assert main(["export", str(good), "--id", str(cid), "--out", str(tmp_path / "ok")]) == 0


def _archive(path):
    from natkit.core.archive import Archive

    return Archive(path)


# --- searches that run but cannot succeed ----------------------------------------------------------
def test_budget_no_candidate_can_meet_is_a_clear_error_not_an_empty_plot(tmp_path, capsys, shared):
    d, archive, space = shared
    b = tmp_path / "tight.toml"
    b.write_text("[budget]\nmacs = 10\n")
    before, _ = snapshot(archive)
    out = tmp_path / "tight"
    code, err = run_cli(["search", "width", "--out", out, "--archive", archive, "--space", space, "--budget", b,
                         "--seed", "5", *FAST], capsys)
    assert code == 2 and "macs <= 10 cannot be met" in err and "smallest candidate" in err
    assert not (out / "front.csv").exists() and not (out / "front.png").exists()
    after, _ = snapshot(archive)
    assert after == before  # found before any training: nothing evaluated, the earlier rows kept as they were


def test_diverging_loss_fails_candidates_and_the_search_goes_on(tmp_path, capsys, shared):
    d, archive, space = shared
    out = tmp_path / "diverge"
    code, err = run_cli(["search", "width", "--out", out, "--archive", archive, "--space", space,
                         "--option", "lr=1e9", "--option", "max_batches=6", "--task", "digits", "--quick", "--generations", "2", "--pop-size",
                         "3", "-q"], capsys)
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]
    assert code == 2 and len(lines) == 1, err
    assert "failed" in lines[0] and "lr=1000000000.0" in lines[0]
    import json

    run_id = json.loads((out / "run.json").read_text())["run_id"]
    cands = _archive(archive).candidates(run_id=run_id)
    # the search did not stop at the first diverging candidate and closed its run normally
    assert len(cands) >= 2 and {c.status for c in cands} == {"failed"}
    assert _archive(archive).run(run_id).status == "done"
    assert all("loss became" in c.message for c in cands)
    assert _archive(archive).front(run_id=run_id) == []


# --- the Python API -------------------------------------------------------------------------------------
def test_python_api_raises_typed_errors_naming_the_value(tmp_path):
    from natkit.core.budget import Budget, load_budget
    from natkit.core.problem import check_objectives
    from natkit.data import load_task
    from natkit.methods import get_method
    from natkit.methods.width.space import load_width_space
    from natkit.nets import create_model
    from natkit.train import TrainConfig

    with pytest.raises(ConfigError, match="'flops'"):
        check_objectives(["error", "flops"])
    with pytest.raises(ConfigError, match="'lenet'"):
        get_method("lenet")
    with pytest.raises(ConfigError, match="-1"):
        Budget({"params": -1})
    with pytest.raises(ConfigError, match="'weird'"):
        load_budget("weird")
    with pytest.raises(ConfigError, match=r"\[4, 0\]"):
        load_width_space(str(space_toml(tmp_path, choices="[4, 0]")))
    with pytest.raises(DataError, match="'cifar-1000'"):
        load_task("cifar-1000")
    with pytest.raises(DataError, match="class 12"):
        load_task("digits", classes=[0, 12])
    with pytest.raises(NatkitError, match="'resnet9000'"):
        create_model("resnet9000", num_classes=10)
    with pytest.raises(ConfigError, match="-0.1"):
        TrainConfig(lr=-0.1)
    with pytest.raises(ConfigError, match="'rmsprop'"):
        TrainConfig(optimizer="rmsprop")


def test_weights_option_missing_corrupt_or_pickled_exits_2_before_any_work(tmp_path, capsys, shared):
    _, archive, space = shared
    width = ["search", "width", "--out", tmp_path / "o", "--archive", archive, "--space", space, *FAST]
    expect_cli_error(capsys, width + ["--weights", tmp_path / "absent.safetensors"], "width does not use --weights",
                     shared=archive)  # a method that trains from scratch has no source weights
    base = ["search", "tascnet", "--out", tmp_path / "o", "--archive", archive, "--quick"]
    expect_cli_error(capsys, base + ["--weights", tmp_path / "absent.safetensors"], "absent.safetensors",
                     shared=archive)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    expect_cli_error(capsys, base + ["--weights", corrupt], "corrupt.pt", shared=archive)
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _Payload(marker)}, evil)
    expect_cli_error(capsys, base + ["--weights", evil], "evil.pt", shared=archive)
    assert not marker.exists()
    assert not (tmp_path / "o" / "run.json").exists()  # rejected before the run started


def test_weights_for_another_architecture_is_refused(tmp_path, digits, make_ctx):
    from safetensors.torch import save_file

    from natkit.methods.common import source_model
    from natkit.nets import create_model

    res = create_model("resnet_tiny", num_classes=10, in_channels=1)
    path = tmp_path / "resnet_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in res.state_dict().items()}, str(path))
    ctx = make_ctx("tascnet", digits, options={"weights": str(path)})
    with pytest.raises(WeightsError, match="resnet_tiny.safetensors.*vgg_tiny"):
        source_model(ctx, "vgg_tiny", source=digits)
    assert source_model(ctx, "resnet_tiny", source=digits) is not None  # the right architecture loads
