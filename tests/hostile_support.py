"""Shared pieces of the hostile-input suite (tests/test_hostile.py: what a search is given;
tests/test_hostile_files.py: outputs, archives, queries, resume records, models and the Python API): the
module-scoped ``world`` (one finished tiny search and a foreign SQLite file) and the one assertion every case
makes, ``expect_refusal``: exit 2, one line naming the value and the rule, no traceback, no unsafe-load hint,
and no byte of any archive or foreign file changed."""

from __future__ import annotations

import gc
import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from natkit.cli import main

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


class _Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _img(n=60):
    return np.random.default_rng(0).random((n, 8, 8)).astype(np.float32)
