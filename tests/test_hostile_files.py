"""Hostile and careless input around a search's files: output paths, foreign and damaged archives, front/plot/
report queries, resume records, stored models and the Python API (see tests/test_hostile.py for the search's
own inputs; the shared fixture and assertion are in tests/hostile_support.py)."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from natkit.cli import main
from natkit.errors import ConfigError, DataError, NatkitError, WeightsError

torch.set_num_threads(1)

from hostile_support import (FAST, UNSAFE, _counts, _digest, _ids, _img, _Payload, expect_refusal, search,  # noqa: F401
                             world)  # world: the fixture


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
