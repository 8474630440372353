"""Hostile and careless input, every command and the Python API: exit 2, one line naming the value and the
rule, no traceback, no unsafe-load hint, and no byte of any archive or foreign file changed.

Cases are grouped by category in their ids (``category/name``); ``benchmarks/reliability/figures.py``
counts them by category into ``results/reliability/``. Nearly all fail before any training.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sqlite3
import stat
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
choices = [4, 8]
hidden = 16
resolution = 8

[train]
epochs = 3
lr = 0.2
batch_size = 64
"""  # ~54 SGD steps: enough to leave chance level (a run whose every candidate is at chance exits 3)
FAST = ["--task", "digits", "--quick", "--generations", "1", "--pop-size", "2", "--threads", "1", "-q"]
UNSAFE = ("weights_only", "allow_pickle", "trust the source", "can still be loaded")


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the main file so its bytes are the archive's whole state."""
    gc.collect()  # archives of finished in-process searches close their connections
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One finished tiny search (its run folder, archive and a stored model), plus a foreign SQLite file."""
    d = tmp_path_factory.mktemp("hostile")
    space = d / "space.toml"
    space.write_text(SPACE)
    run = d / "run"
    assert main(["search", "width", "--out", str(run), "--space", str(space), "--keep-models", "all", *FAST]) == 0
    archive = run / "archive.sqlite"
    _checkpoint(archive)
    foreign = d / "other_app.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes (body) VALUES ('not natkit''s')")
    db.commit()
    db.close()
    cid = sorted(int(p.name) for p in (run / "models").iterdir())[0]
    return {"dir": d, "space": space, "run": run, "archive": archive, "foreign": foreign, "cid": cid}


def _digest(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def _counts(archive: Path) -> tuple:
    db = sqlite3.connect(f"file:{archive}?mode=ro", uri=True)
    try:
        return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("runs", "candidates", "generations"))
    finally:
        db.close()


def expect_refusal(capsys, world, argv, *needles, files=()):
    """Exit 2 with one stderr line naming each needle; every archive and foreign file byte-identical."""
    watched = [world["archive"], world["foreign"], *files]
    before = [_digest(p) for p in watched], _counts(world["archive"])
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    err = cap.err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # "[method] ..." lines are progress
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("natkit: error:"), err
    assert not any(h in err for h in UNSAFE), err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    assert ([_digest(p) for p in watched], _counts(world["archive"])) == before
    return lines[0]


def search(world, tmp_path, *extra, method="width", archive=True, space=True):
    argv = ["search", method, "--out", tmp_path / "o"]
    if archive:
        argv += ["--archive", world["archive"]]
    if space and method in ("width", "random"):
        argv += ["--space", world["space"]]
    return argv + [*FAST, *extra]


def _ids(cases):
    return [c[0] for c in cases]


# --- search arguments --------------------------------------------------------------------------------
ARGS = [
    ("search-args/threads-negative", ["--threads", "-1"], ["--threads", "-1"]),
    ("search-args/threads-zero", ["--threads", "0"], ["--threads", "0"]),
    ("search-args/seed-negative", ["--seed", "-1"], ["--seed", "-1"]),
    ("search-args/seed-huge", ["--seed", str(2 ** 40)], ["--seed", str(2 ** 40)]),
    ("search-args/samples-zero", ["--samples-per-class", "0"], ["--samples-per-class", "0"]),
    ("search-args/samples-negative", ["--samples-per-class", "-3"], ["-3"]),
    ("search-args/classes-text", ["--classes", "a,b"], ["'a,b'"]),
    ("search-args/classes-repeated", ["--classes", "3,3"], ["class 3", "twice"]),
    ("search-args/classes-one", ["--classes", "3"], ["[3]", "at least 2"]),
    ("search-args/classes-out-of-range", ["--classes", "1,42"], ["42"]),
    ("search-args/classes-empty", ["--classes", ""], ["''"]),
    ("search-args/classes-negative", ["--classes=-1,2"], ["-1"]),
    ("search-args/generations-zero", ["--generations", "0"], ["--generations", "0"]),
    ("search-args/pop-size-one", ["--pop-size", "1"], ["--pop-size 1"]),
    ("search-args/workers-negative", ["--workers", "-1"], ["-1"]),
    ("search-args/one-objective", ["--objectives", "error"], ["'error'"]),
    ("search-args/unknown-objective", ["--objectives", "error,flops"], ["'flops'"]),
    ("search-args/repeated-objective", ["--objectives", "error,error"], ["error,error"]),
    ("search-args/device-tpu", ["--device", "tpu"], ["'tpu'"]),
    ("search-args/device-garbage", ["--device", "gpu0!"], ["'gpu0!'"]),
    ("search-args/scheduler-timeout-zero", ["--scheduler-timeout", "0"], ["--scheduler-timeout", "0"]),
    ("search-args/seed-not-a-number", ["--seed", "abc"], ["--seed", "'abc'"]),
    ("search-args/threads-fraction", ["--threads", "1.5"], ["--threads", "'1.5'"]),
    ("search-args/unknown-flag", ["--frobnicate", "3"], ["--frobnicate"]),
    ("search-args/option-without-value", ["--option", "lr"], ["'lr'"]),
    ("search-args/option-bad-number", ["--option", "epochs=many"], ["'many'"]),
    ("search-args/option-unknown-key", ["--option", "nosuch=1"], ["'nosuch'"]),
    ("search-args/unknown-space", ["--space", "no_such_space"], ["'no_such_space'"]),
    ("search-args/unknown-budget", ["--budget", "no_such_budget"], ["'no_such_budget'"]),
    ("search-args/unknown-task", ["--task", "mnist-typo"], ["'mnist-typo'"]),
    ("search-args/decisions-missing", ["--decisions", "/nonexistent/decisions.toml"], ["decisions.toml"]),
    ("search-args/pop-size-huge", ["--pop-size", str(10 ** 9)], ["--pop-size", str(10 ** 9)]),
    ("search-args/generations-huge", ["--generations", str(10 ** 9)], ["--generations", str(10 ** 9)]),
    ("search-args/workers-huge", ["--workers", "100000"], ["--workers", "100000"]),
    ("search-args/threads-huge", ["--threads", "100000"], ["--threads", "100000"]),
    ("search-args/device-meta", ["--device", "meta"], ["'meta'"]),
    ("search-args/robust-error-for-width", ["--objectives", "error,robust_error"], ["robust_error", "width"]),
    ("search-args/objectives-empty", ["--objectives", ",,"], ["at least two"]),
    ("search-args/option-empty-key", ["--option", "=5"], ["''"]),
    ("search-args/workers-and-scheduler", ["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], ["either"]),
]


@pytest.mark.parametrize("case, extra, needles", ARGS, ids=_ids(ARGS))
def test_search_arguments(capsys, world, tmp_path, case, extra, needles):
    if "tpu" in case and torch.cuda.is_available():
        pass  # a TPU is never a torch device here either way
    argv = search(world, tmp_path, *extra, space="--space" not in extra)
    expect_refusal(capsys, world, argv, *needles)
    assert not (tmp_path / "o" / "run.json").exists()


METHOD_CASES = [
    ("search-args/unknown-method", "alexnet", [], ["'alexnet'"]),
    ("weights/width-takes-none", "width", ["--weights", "W"], ["--weights", "width", "from scratch"]),
    ("weights/random-takes-none", "random", ["--weights", "W"], ["--weights", "random"]),
    ("weights/nat-takes-none", "nat", ["--weights", "W"], ["--weights", "nat", "supernet"]),
    ("weights/ke-takes-none", "ke", ["--weights", "W"], ["--weights", "ke"]),
    ("weights/lda-missing-file", "lda", ["--weights", "MISSING"], ["absent.safetensors"]),
    ("weights/tascnet-corrupt-file", "tascnet", ["--weights", "CORRUPT"], ["corrupt.pt"]),
    ("weights/progressive-pickled-objects", "progressive", ["--weights", "EVIL"], ["evil.pt"]),
    ("weights/lda-not-tensors", "lda", ["--weights", "LIST"], ["list.pt", "state dict"]),
    ("weights/lda-truncated-safetensors", "lda", ["--weights", "TRUNC"], ["trunc.safetensors"]),
]


class _Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


OPTION_METHODS = ["nat", "tascnet", "progressive", "ke", "lda", "random"]


@pytest.mark.parametrize("method", OPTION_METHODS, ids=[f"options/{m}-unknown-key" for m in OPTION_METHODS])
def test_every_method_refuses_an_unknown_option_before_its_run_exists(capsys, world, tmp_path, method):
    expect_refusal(capsys, world, search(world, tmp_path, "--option", "wingspan=3", method=method), "'wingspan'")
    assert not (tmp_path / "o" / "run.json").exists()


@pytest.mark.parametrize("case, method, extra, needles", METHOD_CASES, ids=_ids(METHOD_CASES))
def test_methods_and_weights(capsys, world, tmp_path, case, method, extra, needles):
    from safetensors.torch import save_file

    marker = tmp_path / "unpickled"
    files = {"W": tmp_path / "w.safetensors", "MISSING": tmp_path / "absent.safetensors",
             "CORRUPT": tmp_path / "corrupt.pt", "EVIL": tmp_path / "evil.pt", "LIST": tmp_path / "list.pt",
             "TRUNC": tmp_path / "trunc.safetensors"}
    save_file({"w": torch.zeros(2)}, str(files["W"]))
    files["CORRUPT"].write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _Payload(marker)}, files["EVIL"])
    torch.save([torch.zeros(2)], files["LIST"])
    files["TRUNC"].write_bytes(files["W"].read_bytes()[:20])
    extra = [str(files.get(a, a)) for a in extra]
    expect_refusal(capsys, world, search(world, tmp_path, *extra, method=method), *needles)
    assert not marker.exists()


# --- TOML files ------------------------------------------------------------------------------------------
TOML = [
    ("toml/budget-is-a-number", "--budget", "budget = 5\n", ["budget = 5", "[budget] table"]),
    ("toml/budget-is-text", "--budget", 'budget = "small"\n', ["[budget] table"]),
    ("toml/budget-is-a-list", "--budget", "budget = [1, 2]\n", ["[budget] table"]),
    ("toml/budget-negative", "--budget", "[budget]\nmacs = -5\n", ["macs", "-5"]),
    ("toml/budget-unknown-key", "--budget", "[budget]\nflops = 1e6\n", ["'flops'"]),
    ("toml/budget-missing-table", "--budget", "[limits]\nmacs = 1e6\n", ["no [budget] table"]),
    ("toml/budget-bool", "--budget", "[budget]\nmacs = true\n", ["macs", "True"]),
    ("toml/space-is-a-number", "--space", "space = 5\n", ["space = 5"]),
    ("toml/train-is-text", "--space", "train = 'fast'\n" + SPACE.split("[train]")[0], ["train = 'fast'"]),
    ("toml/syntax", "--space", "[space\nlayers = = 2\n", ["malformed TOML"]),
    ("toml/unknown-space-key", "--space", SPACE.replace("layers = 2", "layers = 2\nwidht = 3"), ["'widht'"]),
    ("toml/empty-choices", "--space", SPACE.replace("[4, 8]", "[]"), ["choices"]),
    ("toml/negative-width", "--space", SPACE.replace("[4, 8]", "[4, -8]"), ["-8"]),
    ("toml/negative-lr", "--space", SPACE.replace("lr = 0.2", "lr = -0.5"), ["-0.5"]),
    ("toml/resolution-huge", "--space", SPACE.replace("resolution = 8", "resolution = 100000"), ["100000"]),
    ("toml/width-huge", "--space", SPACE.replace("[4, 8]", "[4, 10000000]"), ["10000000"]),
    ("toml/layers-bool", "--space", SPACE.replace("layers = 2", "layers = true"), ["True"]),
    ("toml/pool-after-number", "--space", SPACE.replace("pool_after = [1, 2]", "pool_after = 2"), ["pool_after"]),
    ("toml/budget-nan", "--budget", "[budget]\nmacs = nan\n", ["macs", "nan"]),
]


@pytest.mark.parametrize("case, flag, body, needles", TOML, ids=_ids(TOML))
def test_toml(capsys, world, tmp_path, case, flag, body, needles):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    argv = search(world, tmp_path, flag, p, space=flag != "--space")
    expect_refusal(capsys, world, argv, *needles)


@pytest.mark.parametrize("case, flag", [("toml/binary-space", "--space"), ("toml/binary-budget", "--budget")],
                         ids=["toml/binary-space", "toml/binary-budget"])
def test_binary_toml(capsys, world, tmp_path, case, flag):
    p = tmp_path / "binary.toml"
    p.write_bytes(bytes(range(256)) * 4)
    expect_refusal(capsys, world, search(world, tmp_path, flag, p, space=flag != "--space"), "binary.toml")


def test_unreachable_scheduler_fails_within_its_timeout(capsys, world, tmp_path):
    pytest.importorskip("distributed")
    import time

    t0 = time.time()
    expect_refusal(capsys, world, search(world, tmp_path, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout",
                                         "2"), "tcp://127.0.0.1:9")
    assert time.time() - t0 < 20


def test_toml_that_is_a_folder(capsys, world, tmp_path):
    (tmp_path / "dir.toml").mkdir()
    expect_refusal(capsys, world, search(world, tmp_path, "--space", tmp_path / "dir.toml", space=False), "dir.toml")


def test_lda_space_of_the_wrong_shape(capsys, world, tmp_path):
    p = tmp_path / "lda.toml"
    p.write_text("space = 5\n")
    expect_refusal(capsys, world, search(world, tmp_path, "--space", p, method="lda"), "space = 5")


# --- datasets ------------------------------------------------------------------------------------------
def _img(n=60):
    return np.random.default_rng(0).random((n, 8, 8)).astype(np.float32)


NPZ = [
    ("data/npz-label-2**62", dict(x=_img(), y=np.r_[np.arange(59) % 3, 2 ** 62]), ["4611686018427387904"]),
    ("data/npz-one-class", dict(x=_img(), y=np.zeros(60, np.int64)), ["1 class", "at least 2"]),
    ("data/npz-no-images", dict(x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, np.int64)), ["no usable images"]),
    ("data/npz-lacks-y", dict(x=_img()), ["'y'"]),
    ("data/npz-object-array", dict(x=np.array([object()] * 4, dtype=object), y=np.arange(4)), ["objects.npz"]),
    ("data/npz-float-labels", dict(x=_img(), y=np.linspace(0, 2.5, 60)), ["float64"]),
    ("data/npz-negative-label", dict(x=_img(), y=np.r_[np.arange(59) % 3, -4]), ["-4"]),
    ("data/npz-nan-pixels", dict(x=np.full((60, 8, 8), np.nan, np.float32), y=np.arange(60) % 3), ["NaN"]),
    ("data/npz-label-gap", dict(x=_img(), y=np.r_[np.arange(59) % 3, 9]), ["class 3"]),
    ("data/npz-two-samples", dict(x=_img(2), y=np.array([0, 1])), ["too small"]),
]


@pytest.mark.parametrize("case, arrays, needles", NPZ, ids=_ids(NPZ))
def test_npz(capsys, world, tmp_path, case, arrays, needles):
    p = tmp_path / "objects.npz"
    np.savez(p, **arrays)
    expect_refusal(capsys, world, search(world, tmp_path, "--task", f"npz:{p}"), *needles)


def test_npz_that_is_not_a_zip(capsys, world, tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"PK\x03\x04 definitely not a zip")
    expect_refusal(capsys, world, search(world, tmp_path, "--task", f"npz:{p}"), "junk.npz")


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims ``width`` x ``height`` (no pixel data needed to trip the limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                     chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _folder(tmp_path: Path, kind: str) -> Path:
    from PIL import Image

    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(root / c / f"{i}.png")
    if kind == "bomb":
        _png_header(root / "cat" / "bomb.png", 30000, 30000)
    elif kind == "big":
        _png_header(root / "cat" / "big.png", 9000, 9000)
    elif kind == "corrupt":
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif kind == "one-class":
        import shutil

        shutil.rmtree(root / "dog")
    elif kind == "empty-class":
        for f in (root / "dog").iterdir():
            f.unlink()
    return root


FOLDERS = [("data/folder-decompression-bomb", "bomb", ["bomb.png", "too large to decode"]),
           ("data/folder-over-natkit-limit", "big", ["big.png", "9000x9000"]),
           ("data/folder-corrupt-png", "corrupt", ["broken.png"]),
           ("data/folder-one-class", "one-class", ["found 1"]),
           ("data/folder-empty-class", "empty-class", ["dog", "no images"])]


@pytest.mark.parametrize("case, kind, needles", FOLDERS, ids=_ids(FOLDERS))
def test_image_folders(capsys, world, tmp_path, case, kind, needles):
    root = _folder(tmp_path, kind)
    expect_refusal(capsys, world, search(world, tmp_path, "--task", f"folder:{root}"), *needles)


# --- where results go ----------------------------------------------------------------------------------
def _readonly_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    p.chmod(0o555)
    return p


@pytest.fixture
def restore_modes(tmp_path):
    yield
    for p in [tmp_path, *tmp_path.rglob("*")]:
        try:
            p.chmod(p.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
        except OSError:
            pass


def _paths(kind, tmp_path, world):
    """(argv, needles) for an output path that cannot be written."""
    f = tmp_path / "a_file"
    f.write_text("x")
    ro = _readonly_dir(tmp_path / "ro")
    run, cid = world["run"], world["cid"]
    import shutil

    ro_run = tmp_path / "ro_run"
    shutil.copytree(run, ro_run)
    _readonly_dir(ro_run)
    table = {
        "outputs/search-out-is-a-file": (["search", "width", "--out", f, "--space", world["space"], *FAST],
                                         ["a_file", "not a folder"]),
        "outputs/search-out-read-only": (["search", "width", "--out", ro / "o", "--space", world["space"], *FAST],
                                         ["ro", "read-only"]),
        "outputs/search-out-under-a-file": (["search", "width", "--out", f / "sub", "--space", world["space"],
                                             *FAST], ["a_file", "is a file"]),
        "outputs/search-archive-is-a-folder": (search(world, tmp_path, archive=False) + ["--archive", ro],
                                               ["folder"]),
        "outputs/search-archive-in-read-only-folder": (search(world, tmp_path, archive=False) +
                                                       ["--archive", ro / "a.sqlite"], ["read-only"]),
        "outputs/plot-out-is-a-file": (["plot", run, "--out", f], ["a_file", "not a folder"]),
        "outputs/plot-out-read-only": (["plot", run, "--out", ro], ["read-only"]),
        "outputs/plot-png-is-a-folder": (["plot", run, "--out", tmp_path / "p"], ["front.png", "folder"]),
        "outputs/report-out-is-a-file": (["report", run, "--out", f], ["a_file"]),
        "outputs/report-out-read-only": (["report", run, "--out", ro / "rep"], ["read-only"]),
        "outputs/export-out-is-a-file": (["export", run, "--id", cid, "--out", f], ["a_file"]),
        "outputs/export-out-read-only": (["export", run, "--id", cid, "--out", ro / "e"], ["read-only"]),
        "outputs/search-out-dev-null": (["search", "width", "--out", "/dev/null", "--space", world["space"], *FAST],
                                        ["/dev/null", "not a folder"]),
        "outputs/search-out-empty": (["search", "width", "--out", "", "--space", world["space"], *FAST],
                                     ["must not be empty"]),
        "outputs/search-archive-dev-null": (search(world, tmp_path, archive=False) + ["--archive", "/dev/null"],
                                            ["/dev/null"]),
        "outputs/report-default-out-read-only": (["report", ro_run], ["read-only"]),
        "outputs/plot-out-empty": (["plot", run, "--out", ""], ["--out", "empty"]),
        "outputs/export-out-empty": (["export", run, "--id", cid, "--out", ""], ["--out", "empty"]),
        "outputs/front-dir-empty": (["front", ""], ["empty"]),
    }
    (tmp_path / "p" / "front.png").mkdir(parents=True)
    return table[kind]


OUTPUTS = ["outputs/search-out-is-a-file", "outputs/search-out-read-only", "outputs/search-out-under-a-file",
           "outputs/search-archive-is-a-folder", "outputs/search-archive-in-read-only-folder",
           "outputs/plot-out-is-a-file", "outputs/plot-out-read-only", "outputs/plot-png-is-a-folder",
           "outputs/report-out-is-a-file", "outputs/report-out-read-only", "outputs/export-out-is-a-file",
           "outputs/export-out-read-only", "outputs/search-out-dev-null", "outputs/search-out-empty",
           "outputs/search-archive-dev-null", "outputs/report-default-out-read-only", "outputs/plot-out-empty",
           "outputs/export-out-empty", "outputs/front-dir-empty"]


@pytest.mark.parametrize("case", OUTPUTS, ids=OUTPUTS)
def test_output_paths(capsys, world, tmp_path, restore_modes, case, monkeypatch):
    argv, needles = _paths(case, tmp_path, world)
    monkeypatch.chdir(tmp_path / "ro")  # a path that resolves to "." must not write here either
    expect_refusal(capsys, world, argv, *needles)
    assert sorted(p.name for p in (tmp_path / "ro").iterdir()) == []


def test_read_only_archive_refuses_search_and_still_reads(capsys, world, tmp_path, restore_modes):
    import shutil

    ro = tmp_path / "ro_run"
    shutil.copytree(world["run"], ro)
    (ro / "archive.sqlite").chmod(0o444)
    line = expect_refusal(capsys, world, search(world, tmp_path, archive=False) + ["--archive", ro / "archive.sqlite"],
                          "read-only", files=[ro / "archive.sqlite"])
    assert "front, plot and report can still read it" in line
    _readonly_dir(ro)
    before = _digest(ro / "archive.sqlite"), _digest(ro / "archive.sqlite-wal")
    assert main(["front", str(ro), "--format", "json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 1
    assert main(["report", str(ro), "--out", str(tmp_path / "rep")]) == 0
    assert main(["plot", str(ro), "--out", str(tmp_path / "plots")]) == 0
    assert (_digest(ro / "archive.sqlite"), _digest(ro / "archive.sqlite-wal")) == before


# --- archives that are not natkit's, or damaged --------------------------------------------------------------
ARCHIVES = ["archives/front-foreign", "archives/plot-foreign", "archives/report-foreign", "archives/export-foreign",
            "archives/search-into-foreign", "archives/front-not-a-database", "archives/front-empty-database",
            "archives/front-future-schema", "archives/front-missing", "archives/search-into-not-a-database",
            "archives/front-foreign-wal", "archives/search-into-empty-database", "archives/front-tampered-schema"]


def _archive_case(kind, tmp_path, world):
    foreign = world["foreign"]
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("PRAGMA user_version=7").connection.close()  # valid, zero tables
    future = tmp_path / "future.sqlite"
    from natkit.core.archive import Archive

    Archive(future).close()
    db = sqlite3.connect(future)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    wal = tmp_path / "wal_app.sqlite"
    db = sqlite3.connect(wal)
    db.execute("PRAGMA journal_mode=WAL")  # another application's WAL database: opening it could leave -shm/-wal
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    tampered = tmp_path / "tampered.sqlite"
    Archive(tampered).close()
    db = sqlite3.connect(tampered)
    db.execute("ALTER TABLE candidates DROP COLUMN macs")
    db.commit()
    db.close()
    table = {
        "archives/front-tampered-schema": (["front", tampered], ["macs"]),
        "archives/front-foreign": (["front", foreign], [foreign, "not a natkit archive"]),
        "archives/plot-foreign": (["plot", foreign, "--out", tmp_path / "p"], ["not a natkit archive"]),
        "archives/report-foreign": (["report", foreign, "--out", tmp_path / "r"], ["not a natkit archive"]),
        "archives/export-foreign": (["export", foreign, "--id", 1, "--out", tmp_path / "e"], ["not a natkit archive"]),
        "archives/search-into-foreign": (search(world, tmp_path, archive=False) + ["--archive", foreign],
                                         ["not a natkit archive"]),
        "archives/front-not-a-database": (["front", junk], ["junk.sqlite"]),
        "archives/front-empty-database": (["front", empty], ["empty.sqlite", "not a natkit archive"]),
        "archives/front-future-schema": (["front", future], ["schema 99"]),
        "archives/front-missing": (["front", tmp_path / "nowhere"], ["nowhere"]),
        "archives/search-into-not-a-database": (search(world, tmp_path, archive=False) + ["--archive", junk],
                                                ["junk.sqlite"]),
        "archives/front-foreign-wal": (["front", wal, "--format", "csv"], ["not a natkit archive"]),
        "archives/search-into-empty-database": (search(world, tmp_path, archive=False) + ["--archive", empty],
                                                ["empty.sqlite"]),
    }
    argv, needles = table[kind]
    return argv, needles, [junk, empty, future, wal, tampered]


@pytest.mark.parametrize("case", ARCHIVES, ids=ARCHIVES)
def test_archives(capsys, world, tmp_path, case):
    argv, needles, files = _archive_case(case, tmp_path, world)
    def others():  # files beside the databases that are not natkit's (natkit's own archives may get -shm)
        return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(("future", "tampered"))
                      and p.name not in ("p", "r", "e", "o"))

    sidecars = others()
    expect_refusal(capsys, world, argv, *needles, files=files)
    assert others() == sidecars
    assert not Path(str(world["foreign"]) + "-wal").exists() and not Path(str(world["foreign"]) + "-shm").exists()


def test_damaged_rows_are_skipped_with_a_warning_naming_their_ids(capsys, world, tmp_path):
    import shutil

    d = tmp_path / "damaged"
    shutil.copytree(world["run"], d)
    db = sqlite3.connect(d / "archive.sqlite")
    ids = [r[0] for r in db.execute("SELECT id FROM candidates WHERE status='ok' ORDER BY id")]
    db.execute("UPDATE candidates SET macs='lots' WHERE id=?", (ids[0],))
    db.execute("UPDATE candidates SET extra='{not json' WHERE id=?", (ids[1],))
    db.commit()
    db.close()
    for argv in (["front", d, "--format", "json"], ["report", d, "--out", tmp_path / "r"],
                 ["plot", d, "--out", tmp_path / "p"]):
        assert main([str(a) for a in argv]) == 0
        err = capsys.readouterr().err
        assert f"row id {ids[0]}" in err and f"row id {ids[1]}" in err and "Traceback" not in err
    assert main(["front", str(d), "--format", "json"]) == 0
    shown = {json.loads(ln)["id"] for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert ids[0] not in shown and ids[1] not in shown


# --- front / plot / report / export arguments -------------------------------------------------------------
QUERY = [
    ("queries/front-unknown-method", ["front", "RUN", "--method", "nosuch"], ["'nosuch'"]),
    ("queries/plot-unknown-method", ["plot", "RUN", "--method", "width,nosuch", "--out", "OUT"], ["'nosuch'"]),
    ("queries/report-unknown-method", ["report", "RUN", "--method", "nosuch", "--out", "OUT"], ["'nosuch'"]),
    ("queries/plot-unknown-x", ["plot", "RUN", "--x", "foo", "--out", "OUT"], ["'foo'", "--x"]),
    ("queries/plot-unknown-y", ["plot", "RUN", "--y", "bar", "--out", "OUT"], ["'bar'", "--y"]),
    ("queries/plot-same-axes", ["plot", "RUN", "--x", "error", "--y", "error", "--out", "OUT"], ["'error'"]),
    ("queries/front-unknown-objective", ["front", "RUN", "--objectives", "error,flops"], ["'flops'"]),
    ("queries/front-bad-format", ["front", "RUN", "--format", "xml"], ["'xml'"]),
    ("queries/export-id-zero", ["export", "RUN", "--id", "0", "--out", "OUT"], ["--id", "0"]),
    ("queries/export-id-missing", ["export", "RUN", "--id", "999999", "--out", "OUT"], ["999999"]),
    ("queries/export-id-text", ["export", "RUN", "--id", "abc"], ["'abc'"]),
    ("queries/no-command", [], ["required"]),
    ("queries/export-id-huge", ["export", "RUN", "--id", str(2 ** 70), "--out", "OUT"], ["--id"]),
    ("queries/front-method-trailing-comma", ["front", "RUN", "--method", "width,"], ["''"]),
    ("queries/front-test-error-objective", ["front", "RUN", "--objectives", "error,test_error"], ["'test_error'"]),
]


@pytest.mark.parametrize("case, argv, needles", QUERY, ids=_ids(QUERY))
def test_queries(capsys, world, tmp_path, case, argv, needles):
    argv = [world["run"] if a == "RUN" else tmp_path / "out" if a == "OUT" else a for a in argv]
    expect_refusal(capsys, world, argv, *needles)


# --- --resume with a damaged run record -----------------------------------------------------------------------
RESUME = [
    ("resume/args-not-an-object", {"args": [], "run_id": 1, "started": 0.0}, ["not a natkit run record"]),
    ("resume/run-id-text", {"args": {}, "run_id": "1", "started": 0.0}, ["not a natkit run record"]),
    ("resume/unknown-argument", {"args": {"turbo": 1}, "run_id": 1, "started": 0.0}, ["'turbo'"]),
    ("resume/argument-wrong-type", {"args": {"generations": "many"}, "run_id": 1, "started": 0.0},
     ["generations", "'many'"]),
    ("resume/a-list", [1, 2, 3], ["not a natkit run record"]),
    ("resume/stored-threads-negative", {"args": {"threads": -1}, "run_id": 1, "started": 0.0}, ["--threads", "-1"]),
    ("resume/run-not-in-archive", {"args": {}, "run_id": 4242, "started": 0.0}, ["4242", "not in"]),
    ("resume/run-of-another-method", {"args": {"method": "random"}, "run_id": 1, "started": 0.0},
     ["width run, not random"]),
]


@pytest.mark.parametrize("case, record, needles", RESUME, ids=_ids(RESUME))
def test_resume_records(capsys, world, tmp_path, case, record, needles):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text(json.dumps(record))
    expect_refusal(capsys, world, search(world, tmp_path, "--resume"), *needles)


def test_resume_record_that_is_not_json(capsys, world, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_bytes(b"\xff\xfe binary")
    expect_refusal(capsys, world, search(world, tmp_path, "--resume"), "run.json")
    expect_refusal(capsys, world, search(world, tmp_path / "x", "--resume"), "nothing to resume")


# --- the Python API ------------------------------------------------------------------------------------------
def _model_dir(tmp_path, kind):
    from safetensors.torch import save_file

    from natkit.nets import create_model
    from natkit.nets.io import save_model

    d = save_model(create_model("vgg_tiny", num_classes=10, in_channels=1), tmp_path / "m")
    meta = json.loads((d / "arch.json").read_text())
    if kind == "no-arch":
        (d / "arch.json").write_text(json.dumps({"input": meta["input"]}))
    elif kind == "unknown-kwargs":
        meta["arch"]["kwargs"]["wingspan"] = 3
        (d / "arch.json").write_text(json.dumps(meta))
    elif kind == "other-layout":
        other = create_model("vgg_tiny", num_classes=3, in_channels=3)
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(d / "weights.safetensors"))
    elif kind == "other-classes":
        other = create_model("vgg_tiny", num_classes=3, in_channels=1)
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(d / "weights.safetensors"))
    elif kind == "other-family":
        other = create_model("resnet_tiny", num_classes=10, in_channels=1)
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(d / "weights.safetensors"))
    elif kind == "arch-not-json":
        (d / "arch.json").write_bytes(b"\x00\x01{")
    elif kind == "arch-a-list":
        (d / "arch.json").write_text("[1, 2]")
    elif kind == "negative-classes":
        meta["arch"]["kwargs"]["num_classes"] = -1
        (d / "arch.json").write_text(json.dumps(meta))
    return d


LOAD = [("api/load-model-without-arch", "no-arch", ["'arch'"]),
        ("api/load-model-unknown-kwargs", "unknown-kwargs", ["wingspan"]),
        ("api/load-model-other-layout", "other-layout", ["features.0.weight", "3 input channels", "says 1"]),
        ("api/load-model-other-classes", "other-classes", ["3 outputs", "10 classes"]),
        ("api/load-model-other-family", "other-family", ["vgg_tiny", "layer"]),
        ("api/load-model-arch-not-json", "arch-not-json", ["arch.json"]),
        ("api/load-model-arch-a-list", "arch-a-list", ["'arch'"]),
        ("api/load-model-negative-classes", "negative-classes", ["arch.json", "buildable"])]


@pytest.mark.parametrize("case, kind, needles", LOAD, ids=_ids(LOAD))
def test_load_model(tmp_path, case, kind, needles):
    from natkit.nets.io import load_model

    d = _model_dir(tmp_path, kind)
    with pytest.raises(WeightsError) as exc:
        load_model(d)
    msg = str(exc.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_export_of_a_model_with_the_wrong_layout_exits_2(capsys, world, tmp_path):
    import shutil

    d = tmp_path / "run"
    shutil.copytree(world["run"], d)
    src = d / "models" / str(world["cid"])
    from safetensors.torch import save_file

    from natkit.nets import create_model

    other = create_model("vgg", num_classes=3, in_channels=3, cfg=[4, "M"], hidden=[8])
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(src / "weights.safetensors"))
    expect_refusal(capsys, world, ["export", d, "--id", world["cid"], "--out", tmp_path / "e"], "layer",
                   files=[d / "archive.sqlite"])


def _api_calls(tmp_path, world):
    from natkit.core.archive import Archive
    from natkit.core.budget import Budget, load_budget
    from natkit.core.problem import check_objectives
    from natkit.data import load_task
    from natkit.methods import get_method
    from natkit.nets.io import load_state_dict_file

    bad_budget = tmp_path / "b.toml"
    bad_budget.write_text("budget = 5\n")
    evil = tmp_path / "evil.pt"
    torch.save({"payload": _Payload(tmp_path / "unpickled")}, evil)
    npz = tmp_path / "huge.npz"
    np.savez(npz, x=_img(), y=np.r_[np.arange(59) % 3, 2 ** 62])
    return {
        "api/load-task-classes-repeated": (lambda: load_task("digits", classes=[3, 3]), DataError, ["twice"]),
        "api/load-task-one-class": (lambda: load_task("digits", classes=[3]), DataError, ["at least 2"]),
        "api/load-task-classes-text": (lambda: load_task("digits", classes="a,b"), DataError, ["'a,b'"]),
        "api/load-task-samples-zero": (lambda: load_task("digits", samples_per_class=0), DataError, ["0"]),
        "api/load-task-huge-label": (lambda: load_task(f"npz:{npz}"), DataError, ["4611686018427387904"]),
        "api/budget-text": (lambda: Budget({"macs": "x"}), ConfigError, ["'x'"]),
        "api/budget-file-wrong-shape": (lambda: load_budget(str(bad_budget)), ConfigError, ["budget = 5"]),
        "api/archive-foreign": (lambda: Archive(world["foreign"]), NatkitError, ["not a natkit archive"]),
        "api/archive-foreign-read-only": (lambda: Archive(world["foreign"], readonly=True), NatkitError,
                                          ["not a natkit archive"]),
        "api/archive-read-only-write": (lambda: Archive(world["archive"], readonly=True).start_run("m", "t", {}, 0),
                                        NatkitError, ["read-only"]),
        "api/objectives": (lambda: check_objectives(["error", "flops"]), ConfigError, ["'flops'"]),
        "api/method": (lambda: get_method("lenet"), ConfigError, ["'lenet'"]),
        "api/weights-pickled": (lambda: load_state_dict_file(evil), WeightsError, ["evil.pt"]),
    }


API = ["api/load-task-classes-repeated", "api/load-task-one-class", "api/load-task-classes-text",
       "api/load-task-samples-zero", "api/load-task-huge-label", "api/budget-text", "api/budget-file-wrong-shape",
       "api/archive-foreign", "api/archive-foreign-read-only", "api/archive-read-only-write", "api/objectives",
       "api/method", "api/weights-pickled"]


@pytest.mark.parametrize("case", API, ids=API)
def test_python_api(tmp_path, world, case):
    before = _digest(world["archive"]), _digest(world["foreign"]), _counts(world["archive"])
    call, err, needles = _api_calls(tmp_path, world)[case]
    with pytest.raises(err) as exc:
        call()
    msg = str(exc.value)
    assert "\n" not in msg and not any(h in msg for h in UNSAFE), msg
    assert all(n in msg for n in needles), msg
    assert (_digest(world["archive"]), _digest(world["foreign"]), _counts(world["archive"])) == before
    assert not (tmp_path / "unpickled").exists()


# --- a moved run folder ----------------------------------------------------------------------------------------
def test_a_copied_run_folder_reads_its_own_archive(capsys, world, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(world["run"], d)
    db = sqlite3.connect(d / "archive.sqlite")
    db.execute("UPDATE candidates SET status='failed' WHERE status='ok'")  # the copy now differs
    db.commit()
    db.close()
    before = _digest(world["archive"])
    assert main(["front", str(d), "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() == ""  # the copy's (empty) front, not the original's
    assert main(["front", str(world["run"]), "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() != ""
    assert _digest(world["archive"]) == before
