"""Hostile and careless input to a search (arguments, methods and --weights, TOML files, data): exit 2, one
line naming the value and the rule, no traceback, no unsafe-load hint, and no byte of any archive or foreign
file changed. Outputs, archives, queries, resume records, models and the Python API are in
tests/test_hostile_files.py; the shared fixture and assertion in tests/hostile_support.py.

Cases are grouped by category in their ids (``category/name``); ``benchmarks/reliability/figures.py``
counts them by category into ``results/reliability/``. Nearly all fail before any training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hostile_support import SPACE, _ids, _img, _Payload, expect_refusal, search, world  # noqa: F401 (world: fixture)

torch.set_num_threads(1)


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
