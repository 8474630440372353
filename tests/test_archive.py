import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from natkit.core.archive import Archive, nondominated
from natkit.errors import NatkitError


def test_front_equals_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("width", "digits", {"k": 1}, 0)
    pts = rng.random((60, 2))
    for i, (e, m) in enumerate(pts):
        a.add(run, "width", generation=i // 10, encoding=[i], metrics={"error": e, "macs": m, "params": 1})
    a.add(run, "width", generation=9, encoding=[999], status="failed", message="boom")
    brute = {i + 1 for i, p in enumerate(pts)
             if not any((q <= p).all() and (q < p).any() for q in pts)}
    assert {c.id for c in a.front(("error", "macs"))} == brute
    assert len(a.candidates()) == 61 and a.candidates(status="failed")[0].message == "boom"


def test_lookup_extra_and_exports(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("ke", "digits", {}, 3)
    cid = a.add(run, "ke", generation=0, encoding={"s": 0.5}, metrics={"error": 0.1, "macs": 5, "params": 2,
                                                                         "stage": 2}, eval_key="k")
    assert a.lookup("k", {"s": 0.5}).id == cid and a.lookup("other", {"s": 0.5}) is None
    assert a.get(cid).extra == {"stage": 2}
    a.set_test_error(cid, 0.2)
    assert '"test_error": 0.2' in a.to_json([a.get(cid)]) and "stage" in a.to_csv([a.get(cid)])
    assert a.runs()[0].versions["torch"]


def _writer(path, tag, n):
    a = Archive(path)
    run = a.start_run(tag, "digits", {}, 0)
    for i in range(n):
        a.add(run, tag, generation=0, encoding=[tag, i], metrics={"error": 0.5, "macs": i})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite"
    Archive(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"w{k}", 60)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    a = Archive(path)
    assert len(a.candidates()) == 180 and len(a.runs()) == 3


def test_nondominated_keeps_one_of_duplicates():
    F = np.array([[1, 1], [1, 1], [0, 2], [2, 2]])
    assert nondominated(F) == [0, 2]


def test_stale_rows_leave_the_front(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("nat", "digits", {}, 0)
    old = a.add(run, "nat", generation=0, encoding=[1], metrics={"error": 0.01, "macs": 1})
    new = a.add(run, "nat", generation=1, encoding=[1], metrics={"error": 0.2, "macs": 1})
    a.mark_stale([old])
    assert [c.id for c in a.front()] == [new] and a.get(old).status == "stale"


def test_opening_retries_a_locked_database_and_names_other_failures(tmp_path, monkeypatch):
    real, calls = Archive._open, []

    def flaky(self):  # what a second process creating the same archive at that instant can cause
        calls.append(1)
        if len(calls) <= 2:
            self._db = sqlite3.connect(":memory:")
            raise sqlite3.OperationalError("database is locked")
        return real(self)

    monkeypatch.setattr(Archive, "_open", flaky)
    a = Archive(tmp_path / "a.sqlite")
    assert len(calls) == 3 and a.start_run("m", "t", {}, 0) == 1
    a.close()

    def broken(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Archive, "_open", broken)
    with pytest.raises(NatkitError, match="cannot open archive .*disk I/O error"):
        Archive(tmp_path / "b.sqlite")


def test_a_finished_run_is_in_the_database_file_without_its_wal(tmp_path):
    """A committed or copied archive.sqlite (its -wal file left behind, as .gitignore does) holds every row of
    a finished run, although the writing process still has the archive open."""
    import shutil

    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("width", "digits", {}, 0)
    for i in range(50):
        cid = a.add(run, "width", generation=0, encoding=[i], metrics={"error": 0.5, "macs": i, "params": 1})
    a.set_test_error(cid, 0.25)
    a.finish_run(run)
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "a.sqlite", tmp_path / "copy" / "a.sqlite")  # the database file alone
    db = sqlite3.connect(tmp_path / "copy" / "a.sqlite")
    assert db.execute("SELECT count(*), count(test_error) FROM candidates").fetchone() == (50, 1)
    assert db.execute("SELECT status FROM runs").fetchone() == ("done",)
