"""The Pareto archive: every evaluated candidate of a task, in SQLite.

Contract (what every caller may rely on):
- one transaction per finished evaluation (``add`` commits before returning), WAL journal, so a
  killed process loses at most the evaluation in flight and concurrent writers lose nothing;
- records come back as immutable ``Candidate`` objects;
- ``lookup(eval_key, encoding)`` finds an earlier ``ok``/``infeasible`` result of the same evaluator
  settings, so a resumed or repeated search does not evaluate it again;
- every row has one ``Status`` (below); methods never call ``add`` themselves: every row enters through
  ``natkit.core.writer.write_row``, which does the look-up, the budget check and model saving;
- ``add`` never stores a second finished row for one (eval_key, encoding): it returns the first one's id;
- ``claim`` (``natkit.core.claiming``) marks a candidate as being evaluated by this process (owner + heartbeat, Optuna's RUNNING
  trial): another process on the archive waits for that result instead of computing it again; a claim
  whose owner died (same host, pid gone) or stopped its heartbeat for ``claim_timeout`` s is taken over;
- natkit writes only to archives it created: each carries ``PRAGMA application_id`` = APPLICATION_ID
  (archives made before the marker are recognised by their ``meta`` table); any other SQLite file is
  refused unchanged. ``Archive(path, readonly=True)`` (front, plot, report) opens ``mode=ro`` and never
  changes the journal mode;
- a damaged row (bad JSON, text in a number column) is skipped with a warning naming its id.

Status of a row (``Status``, stored as its value):
- ``ok``: evaluated and within the run's budget; the only status that reaches a front;
- ``infeasible``: evaluated, but over the budget (kept so a resumed run does not evaluate it again);
- ``failed``: the evaluation raised (message says why); never looked up, so a retry evaluates again;
- ``stale``: an earlier ``ok``/``infeasible`` result that a later evaluation superseded (e.g. a NAT
  subnet re-evaluated after the supernet was adapted); kept for the record, off every front.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
import time
from urllib.parse import quote
from pathlib import Path

import numpy as np

from natkit.core.claiming import CLAIM_TIMEOUT, ClaimsMixin, _Heartbeat, _owner
from natkit.core.records import (APPLICATION_ID, OBJECTIVES, SCHEMA_VERSION, Candidate, Run, Status,  # noqa: F401
                                 _CLAIMS, _COLS, _NATKIT_TABLES, _SCHEMA, _cand, _flat, _num, encode_key,
                                 json_plain, nondominated, package_versions)
from natkit.errors import NatkitError


def _retry_locked(fn, attempts: int):
    """``fn()``, called again after a growing pause while SQLite answers "database is locked"."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 1.0))


class ArchiveReadOnly(NatkitError):
    """The archive can be read but not written (file mode, folder or filesystem)."""


def _check_writable(path: Path) -> None:
    from natkit.core.paths import file_writable

    if path.is_dir():
        raise NatkitError(f"archive {path} is a folder, not an archive file")
    why = file_writable(path)
    if why:
        raise ArchiveReadOnly(f"archive {path} cannot be written: {why} (front, plot and report can still "
                              f"read it; give search a writable --archive)")


# Archives this process holds open through SQLite, by (device, inode). Reading such a file with a plain
# open()/close() would drop every POSIX lock the process holds on it (locks are per process, and close()
# releases them all), after which another process may checkpoint and delete the WAL under our connections
# ("disk I/O error"). A file already open here was identified when it was first opened, so it is not sniffed.
_OPEN_HERE: dict = {}


def _inode(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Archive(ClaimsMixin):
    def __init__(self, path, *, readonly: bool = False, claim_timeout: float = CLAIM_TIMEOUT):
        self.path = Path(path)
        self.readonly = readonly
        self.claim_timeout = float(claim_timeout)
        self.owner = _owner()
        self._warned: set = set()
        self._beat: _Heartbeat | None = None
        self._observers: list = []  # fn(run_id, status, metrics) after each add (e.g. a progress line)
        self._held = None
        if readonly:
            self._open_readonly()
            self._hold()
            return
        _check_writable(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveReadOnly(f"cannot create the archive's folder {self.path.parent}: {exc.strerror}") from None
        if self.path.exists():
            # look before writing anything: a file natkit did not create is refused with its bytes unchanged
            journal = Path(str(self.path) + "-journal")
            if journal.is_file() and journal.stat().st_size > 0 and self._sniff():
                pass  # a natkit write interrupted mid-transaction: the write connection below rolls it back
            else:
                self._open_readonly()
                self._db.close()
        # Two processes creating the same archive at once can meet SQLite's deadlock check (switching to
        # WAL, or two schema transactions upgrading their locks), which fails at once with "database is
        # locked" instead of waiting on the busy timeout; opening again a moment later succeeds.
        try:
            _retry_locked(self._open, attempts=40)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise ArchiveReadOnly(f"archive {self.path} is read-only: {exc} (front, plot and report can "
                                      f"still read it; give search a writable --archive)") from None
            raise NatkitError(f"cannot open archive {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise NatkitError(f"cannot open archive {self.path}: {exc}") from None
        self._hold()

    def _hold(self) -> None:
        key = _inode(self.path)
        if key is not None:
            _OPEN_HERE[key] = _OPEN_HERE.get(key, 0) + 1
            self._held = key

    def _release_hold(self) -> None:
        key, self._held = getattr(self, "_held", None), None
        if key is not None and key in _OPEN_HERE:
            _OPEN_HERE[key] -= 1
            if _OPEN_HERE[key] <= 0:
                del _OPEN_HERE[key]

    # opening ------------------------------------------------------------------------------------
    def _open_readonly(self):
        if not self.path.is_file():
            raise NatkitError(f"no archive at {self.path} (not a regular file)" if self.path.exists()
                              else f"no archive at {self.path}")
        if not self._sniff():  # an empty file: a new archive for search, nothing to read for the others
            if self.readonly:
                raise NatkitError(f"{self.path} is an empty file, not a natkit archive")
            self._db = sqlite3.connect(":memory:")
            return
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            self._check_marker(self._db)
        except sqlite3.OperationalError as exc:
            # a WAL archive on a read-only folder or filesystem cannot get its -shm file: nobody can be
            # writing it then, so read it as immutable
            try:
                self._db.close()
            except Exception:
                pass
            try:
                self._db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
                self._check_marker(self._db)
            except sqlite3.DatabaseError:
                raise NatkitError(f"cannot open archive {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise NatkitError(f"cannot open archive {self.path}: {exc}") from None

    def _sniff(self) -> bool:
        """Identify the file from its bytes before SQLite opens it (which could leave -wal/-shm files beside
        another application's database): False for an empty file, True for a natkit archive; anything
        else raises."""
        if _inode(self.path) in _OPEN_HERE:  # a natkit archive this process already has open (see _OPEN_HERE)
            return True
        journal = Path(str(self.path) + "-journal")
        hot = journal.is_file() and journal.stat().st_size > 0  # a writer died mid-transaction
        for attempt in range(10):  # another natkit process may be writing a new archive's first page now
            try:
                with open(self.path, "rb") as f:
                    head = f.read(100)
            except OSError as exc:
                raise NatkitError(f"cannot read archive {self.path}: {exc.strerror or exc}") from None
            if not head or (len(head) == 100 and head.startswith(b"SQLite format 3\x00")):
                break
            time.sleep(0.05)
        if not head:
            return False
        app_id = int.from_bytes(head[68:72], "big") if len(head) == 100 else 0
        if hot and not self.readonly and (app_id == APPLICATION_ID or len(head) < 100 or
                                          not head.startswith(b"SQLite format 3\x00")):
            # natkit killed while creating or writing its archive: SQLite rolls the journal back on the
            # write connection, and the marker is checked there
            return True
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            raise NatkitError(f"cannot open archive {self.path}: file is not a database")
        if app_id == APPLICATION_ID:
            return True
        if app_id != 0:
            raise NatkitError(f"{self.path} is not a natkit archive (another application's SQLite file, "
                              f"application id {app_id:#x}; natkit writes only to archives it created)")
        # no marker: an archive from before the marker, or someone else's file; look without touching it
        wal = Path(str(self.path) + "-wal")
        if wal.is_file() and wal.stat().st_size:
            return True  # committed pages may still sit in its WAL: the normal check below reads them
        db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro&immutable=1", uri=True)
        try:
            self._check_marker(db)
        except sqlite3.DatabaseError as exc:
            raise NatkitError(f"cannot open archive {self.path}: {exc}") from None
        finally:
            db.close()
        return True

    def _check_marker(self, db) -> bool:
        """True for a natkit archive (marker or pre-marker meta table), False for an empty file;
        anything else raises without having written a byte."""
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id == APPLICATION_ID:
            pass
        elif app_id == 0 and not tables:
            # new only when the file is empty: checked under this connection's write lock (BEGIN IMMEDIATE), so
            # a second natkit process creating the same archive sees either nothing or a whole archive
            if self.readonly or self.path.stat().st_size > 0:
                raise NatkitError(f"{self.path} is an empty SQLite database that natkit did not create, not a "
                                  f"natkit archive")
            return False
        elif app_id != 0 or not _NATKIT_TABLES <= tables or \
                db.execute("SELECT 1 FROM meta WHERE key='schema_version'").fetchone() is None:
            raise NatkitError(f"{self.path} is not a natkit archive (another application's SQLite file; "
                              f"natkit writes only to archives it created)")
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or str(row[0]) != str(SCHEMA_VERSION):
            raise NatkitError(f"archive {self.path} has schema {row[0] if row else 'none'}, "
                              f"this natkit reads {SCHEMA_VERSION}")
        return True

    def _open(self):
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        try:
            self._db.execute("PRAGMA busy_timeout=60000")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not self._check_marker(self._db):  # a new archive: marker and schema in one transaction
                    self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    for stmt in (_SCHEMA + ";" + _CLAIMS).split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                else:
                    if self._db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                        self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")  # natkit's own, pre-marker
                    self._db.execute(_CLAIMS)  # added after schema 1 shipped; harmless to older readers
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            self._db.close()
            raise

    def close(self):
        if self._beat is not None:
            self._beat.stop()
            self._beat = None
        self.checkpoint()
        self._db.close()
        self._release_hold()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, so that ``archive.sqlite`` alone holds every
        committed row (a copied or committed archive without its ``-wal`` file loses nothing). Passive: it
        never waits for, or blocks, another process using the archive."""
        if self.readonly or self.path is None:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # a busy or closed database keeps its log; SQLite checkpoints it later

    def _write(self, sql, args):
        return self._tx(lambda db: db.execute(sql, args).lastrowid)

    def _tx(self, fn):
        """``fn(db)`` inside one ``BEGIN IMMEDIATE`` transaction, retried while the database is locked."""
        if self.readonly:
            raise ArchiveReadOnly(f"archive {self.path} was opened read-only")
        try:
            return _retry_locked(lambda: self._transaction(fn), attempts=20)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise ArchiveReadOnly(f"archive {self.path} became read-only: {exc}") from None
            raise

    def _transaction(self, fn):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(self._db)
            self._db.execute("COMMIT")
            return out
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # runs -------------------------------------------------------------------------------------
    def start_run(self, method: str, task: str, config: dict, seed: int) -> int:
        return self._write("INSERT INTO runs (method, task, config, seed, versions, started) VALUES (?,?,?,?,?,?)",
                           (method, task, encode_key(config), int(seed), json.dumps(package_versions()), time.time()))

    def finish_run(self, run_id: int, status: str = "done") -> None:
        self._write("UPDATE runs SET status=?, finished=? WHERE id=?", (status, time.time(), run_id))
        self.checkpoint()

    def runs(self) -> list[Run]:
        rows = self._db.execute("SELECT id, method, task, config, seed, versions, status, started, finished "
                                "FROM runs ORDER BY id").fetchall()
        out = []
        for r in rows:
            try:
                out.append(Run(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "{}"), r[6], r[7], r[8]))
            except (ValueError, TypeError) as exc:
                if ("run", r[0]) not in self._warned:
                    self._warned.add(("run", r[0]))
                    print(f"natkit: warning: skipping damaged run row id {r[0]} in {self.path}: {exc}",
                          file=sys.stderr)
        return out

    def has_run(self, run_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE id=?", (int(run_id),)).fetchone() is not None

    def methods(self) -> set:
        """Every method name with a candidate in the archive."""
        return {r[0] for r in self._db.execute("SELECT DISTINCT method FROM candidates")}

    def run(self, run_id: int) -> Run:
        r = self._db.execute("SELECT id, method, task, config, seed, versions, status, started, finished FROM runs "
                             "WHERE id=?", (int(run_id),)).fetchone()
        if r is None:
            raise NatkitError(f"no run {run_id} in {self.path}")
        try:
            return Run(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "{}"), r[6], r[7], r[8])
        except (ValueError, TypeError):
            raise NatkitError(f"run {run_id} in {self.path} is damaged (its config is not JSON)") from None

    # candidates -------------------------------------------------------------------------------
    def add(self, run_id: int, method: str, *, generation: int, encoding, arch=None, metrics: dict | None = None,
            status: str = "ok", message: str = "", eval_key: str = "", test_error=None, extra=None,
            seconds=None) -> int:
        """Insert one row (storage only: callers go through ``natkit.core.writer``) and drop this process's
        claim on it, in one transaction. A finished (ok/infeasible) row for the same non-empty ``eval_key``
        and ``encoding`` is never stored twice: the first one's id is returned instead."""
        return self.insert(run_id, method, generation=generation, encoding=encoding, arch=arch, metrics=metrics,
                           status=status, message=message, eval_key=eval_key, test_error=test_error, extra=extra,
                           seconds=seconds)[0]

    def insert(self, run_id: int, method: str, *, generation: int, encoding, arch=None,
               metrics: dict | None = None, status: str = "ok", message: str = "", eval_key: str = "",
               test_error=None, extra=None, seconds=None) -> tuple[int, bool]:
        """``add``, also saying whether the row is new (False: a finished row for the same ``eval_key`` and
        ``encoding`` was there already, e.g. written by another process meanwhile, and its id is returned)."""
        try:
            status = Status(status).value
        except ValueError:
            raise ValueError(f"bad status {status!r}; choose from {', '.join(s.value for s in Status)}") from None
        metrics = dict(metrics or {})
        extra = dict(extra or {})
        for k in list(metrics):
            if k not in OBJECTIVES:
                extra[k] = metrics.pop(k)
        vals = [_num(metrics.get(k)) for k in OBJECTIVES]
        enc = encode_key(encoding)
        row = (run_id, method, int(generation), eval_key, enc, encode_key(arch), *vals, _num(test_error), status,
               message, encode_key(extra), _num(seconds), time.time())

        def write(db):
            if eval_key:
                db.execute("DELETE FROM claims WHERE eval_key=? AND encoding=?", (eval_key, enc))
                if status != "failed":
                    hit = db.execute("SELECT id FROM candidates WHERE eval_key=? AND encoding=? AND status IN "
                                     "('ok','infeasible') ORDER BY id LIMIT 1", (eval_key, enc)).fetchone()
                    if hit:
                        return hit[0], False
            return db.execute(
                "INSERT INTO candidates (run_id, method, generation, eval_key, encoding, arch, error, params, macs, "
                "latency_ms, test_error, status, message, extra, seconds, created) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row).lastrowid, True

        cid, new = self._tx(write)
        for fn in self._observers:
            fn(run_id, status, metrics)
        return cid, new

    def observe(self, fn) -> None:
        """Call ``fn(run_id, status, metrics)`` after every candidate this object adds."""
        self._observers.append(fn)

    def mark_stale(self, cand_ids, reason: str = "superseded by a later evaluation") -> None:
        """Status ``stale``: kept for the record, off every front (e.g. NAT rows whose supernet weights
        have since been adapted and re-evaluated)."""
        for cid in cand_ids:
            self._write("UPDATE candidates SET status=?, message=? WHERE id=? AND status IN (?, ?)",
                        (Status.STALE.value, reason, int(cid), Status.OK.value, Status.INFEASIBLE.value))

    def set_test_error(self, cand_id: int, value: float) -> None:
        self._write("UPDATE candidates SET test_error=? WHERE id=?", (float(value), cand_id))

    def lookup(self, eval_key: str, encoding) -> Candidate | None:
        rows = self._db.execute(
            f"SELECT {_COLS} FROM candidates WHERE eval_key=? AND encoding=? AND status IN ('ok','infeasible') "
            "ORDER BY id", (eval_key, encode_key(encoding))).fetchall()
        for r in rows:
            c = self._parse(r)
            if c is not None:
                return c
        return None

    def get(self, cand_id: int) -> Candidate:
        row = self._db.execute(f"SELECT {_COLS} FROM candidates WHERE id=?", (int(cand_id),)).fetchone()
        if row is None:
            raise NatkitError(f"no candidate with id {cand_id} in {self.path}")
        c = self._parse(row)
        if c is None:
            raise NatkitError(f"candidate {cand_id} in {self.path} is damaged and cannot be read")
        return c

    def _parse(self, row) -> Candidate | None:
        """The row as a Candidate, or None (with one warning per id) when it is damaged."""
        try:
            return _cand(row)
        except (ValueError, TypeError) as exc:
            if row[0] not in self._warned:
                self._warned.add(row[0])
                print(f"natkit: warning: skipping damaged archive row id {row[0]} in {self.path}: "
                      f"{str(exc).splitlines()[0][:120]}", file=sys.stderr)
            return None

    def candidates(self, method=None, run_id=None, status=None) -> list[Candidate]:
        sql, args = f"SELECT {_COLS} FROM candidates WHERE 1=1", []
        for col, val in (("method", method), ("run_id", run_id), ("status", status)):
            if val is None:
                continue
            vals = [val] if isinstance(val, (str, int)) else list(val)
            sql += f" AND {col} IN ({','.join('?' * len(vals))})"
            args += vals
        cands = (self._parse(r) for r in self._db.execute(sql + " ORDER BY id", args).fetchall())
        return [c for c in cands if c is not None]

    def set_extra(self, cand_id: int, extra: dict) -> None:
        self._write("UPDATE candidates SET extra=? WHERE id=?", (encode_key(dict(extra)), int(cand_id)))

    def front(self, objectives=("error", "macs"), method=None, run_id=None, include_chance=False) -> list[Candidate]:
        """Non-dominated ``ok`` candidates over ``objectives`` (all minimised); candidates flagged as at
        chance (``extra["chance"]``, natkit/core/chance.py) are left out unless ``include_chance``."""
        cands = [c for c in self.candidates(method=method, run_id=run_id, status="ok")
                 if all(c.metric(o) is not None for o in objectives) and (include_chance or not c.extra.get("chance"))]
        if not cands:
            return []
        F = np.array([[c.metric(o) for o in objectives] for c in cands], dtype=float)
        return [cands[i] for i in nondominated(F)]

    # generations ------------------------------------------------------------------------------
    def log_generation(self, run_id: int, generation: int, n_evals: int, hv: float, front_size: int) -> None:
        self._write("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?)",
                    (run_id, int(generation), int(n_evals), float(hv), int(front_size), time.time()))

    def generations(self, run_id: int | None = None) -> list[dict]:
        sql = "SELECT run_id, generation, n_evals, hv, front_size FROM generations"
        rows = self._db.execute(sql + (" WHERE run_id=?" if run_id else "") + " ORDER BY run_id, generation",
                                (run_id,) if run_id else ()).fetchall()
        return [dict(zip(("run_id", "generation", "n_evals", "hv", "front_size"), r)) for r in rows]

    # export -----------------------------------------------------------------------------------
    def to_json(self, cands: list[Candidate]) -> str:
        return "\n".join(json.dumps(_flat(c), default=json_plain) for c in cands)

    def to_csv(self, cands: list[Candidate]) -> str:
        buf = io.StringIO()
        rows = [_flat(c) for c in cands]
        cols = list(rows[0]) if rows else ["id", "method", "error", "params", "macs", "status"]
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
        return buf.getvalue()
