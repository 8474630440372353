"""Candidate claims for processes sharing one archive (Optuna's RUNNING trial): who evaluates what.

A process claims a candidate (owner = host:pid:token, heartbeat refreshed from a thread) before it
evaluates it; another process on the same archive waits for that result instead of computing it again.
A claim whose owner died (same host, pid gone) or stopped its heartbeat for ``claim_timeout`` s is taken
over. ``ClaimsMixin`` is the part of ``natkit.core.archive.Archive`` that does it.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from natkit.core.records import _COLS, Candidate, encode_key
from natkit.errors import NatkitError

CLAIM_TIMEOUT = 60.0  # seconds without a heartbeat after which another process takes a claim over


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str) -> bool:
    """True when ``owner`` is a process on this host that no longer exists (e.g. SIGKILLed)."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class _Heartbeat:
    """Refreshes this process's claims every ``interval`` s from a thread with its own connection, so a
    long evaluation is not mistaken for an abandoned one."""

    def __init__(self, path: Path, owner: str, interval: float):
        self.path, self.owner, self.interval = path, owner, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="natkit-claim-heartbeat", daemon=True)
        self._thread.start()

    def _run(self):
        db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(self.interval):
                try:
                    db.execute("UPDATE claims SET heartbeat=? WHERE owner=?", (time.time(), self.owner))
                except sqlite3.OperationalError:  # busy for longer than the timeout: next beat
                    pass
        finally:
            db.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


class ClaimsMixin:
    """Claims on an ``Archive`` (uses its ``_tx``, ``_parse``, ``path``, ``owner`` and ``claim_timeout``)."""

    def claim(self, eval_key: str, encoding) -> tuple[str, object]:
        """Before evaluating: ``("done", Candidate)`` when a finished result exists, ``("mine", None)``
        when this process may evaluate it (claim recorded), ``("other", owner)`` when a live process is
        evaluating it now."""
        enc = encode_key(encoding)

        def take(db):
            hit = db.execute(f"SELECT {_COLS} FROM candidates WHERE eval_key=? AND encoding=? AND status IN "
                             "('ok','infeasible') ORDER BY id LIMIT 1", (eval_key, enc)).fetchone()
            if hit:
                return "done", hit
            row = db.execute("SELECT owner, heartbeat FROM claims WHERE eval_key=? AND encoding=?",
                             (eval_key, enc)).fetchone()
            now = time.time()
            if row and row[0] != self.owner and now - row[1] < self.claim_timeout and not _owner_dead(row[0]):
                return "other", row[0]
            db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?)", (eval_key, enc, self.owner, now))
            return "mine", None

        state, val = self._tx(take)
        if state == "done":
            cand = self._parse(val)
            if cand is None:  # a damaged row does not count as a result
                return self.claim_anyway(eval_key, enc)
            return state, cand
        if state == "mine" and self._beat is None:
            self._beat = _Heartbeat(self.path, self.owner, max(0.5, self.claim_timeout / 6))
        return state, val

    def claim_anyway(self, eval_key: str, enc: str):
        self._tx(lambda db: db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?)",
                                       (eval_key, enc, self.owner, time.time())))
        return "mine", None

    def failed_since(self, eval_key: str, encoding, since: float) -> Candidate | None:
        """A ``failed`` row of (eval_key, encoding) archived at or after ``since`` (by the process whose
        claim a waiter watched)."""
        row = self._db.execute(f"SELECT {_COLS} FROM candidates WHERE eval_key=? AND encoding=? AND "
                               "status='failed' AND created>=? ORDER BY id DESC LIMIT 1",
                               (eval_key, encode_key(encoding), since)).fetchone()
        return self._parse(row) if row else None

    def poll_claim(self, eval_key: str, encoding, since: float) -> tuple[str, object]:
        """One look at a candidate this process is waiting for (claimed by another process when the wait
        began at ``since``): ``("done", Candidate)``, ``("failed", Candidate)`` when the other process's
        evaluation failed meanwhile (so would ours: the claim taken here is dropped again), ``("mine", None)``
        when its owner released it without a result, died or stopped its heartbeat (take-over), else
        ``("other", owner)``."""
        state, val = self.claim(eval_key, encoding)
        if state == "mine":
            failed = self.failed_since(eval_key, encoding, since)
            if failed is not None:
                self.release(eval_key, encoding)
                return "failed", failed
        return state, val

    def acquire(self, eval_key: str, encoding, poll: float = 0.2) -> tuple[str, object]:
        """``claim``, waiting (polling every ``poll`` s) while a live process holds the claim: returns
        ``("done", Candidate)``, ``("failed", Candidate)`` or ``("mine", None)`` as ``poll_claim`` says."""
        state, val = self.claim(eval_key, encoding)
        since = time.time() - 1.0
        while state == "other":
            time.sleep(poll)
            state, val = self.poll_claim(eval_key, encoding, since)
        return state, val

    def release(self, eval_key: str, encoding) -> None:
        self._tx(lambda db: db.execute("DELETE FROM claims WHERE eval_key=? AND encoding=? AND owner=?",
                                       (eval_key, encode_key(encoding), self.owner)))

    def release_claims(self) -> None:
        """Drop every claim of this process (an evaluation it will not finish)."""
        if not self.readonly:
            try:
                self._tx(lambda db: db.execute("DELETE FROM claims WHERE owner=?", (self.owner,)))
            except (sqlite3.Error, NatkitError):
                pass  # a stale claim expires on its own

    def claims(self) -> list[tuple]:
        try:
            return self._db.execute("SELECT eval_key, encoding, owner, heartbeat FROM claims").fetchall()
        except sqlite3.OperationalError:  # a pre-claims archive opened read-only
            return []
