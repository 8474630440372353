"""Provenance stamped into every results file a benchmark writes: which code (git commit and
whether the work tree had uncommitted changes), which command, which package versions, which CPU
and threads, and how long it took."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def _git(*args, cwd=None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd or _ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command() -> str:
    """The exact command line of this process (``sys.orig_argv``: interpreter, -m module, arguments)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def code_state(root: Path | None = None) -> dict:
    """Git commit and dirty flag (tracked files only, results/ excluded) of the work tree now."""
    root = Path(root or _ROOT)
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", cwd=root)
    return {"commit": _git("rev-parse", "HEAD", cwd=root), "dirty": None if status is None else bool(status)}


# taken when this module is first imported, i.e. when a benchmark starts: a commit made while a long run
# goes on must not be credited with its results
AT_START = code_state()
STARTED = time.time()


def provenance(started: float | None = None) -> dict:
    """A dict for a results file's ``provenance`` key: the code as it was when the process started.
    ``started``: ``time.time()`` at the start of the run (default: when this module was imported)."""
    import torch

    return {
        **AT_START,
        "command": command(),
        "cwd": os.getcwd(),
        "versions": {"natkit": _version("natkit"), "torch": torch.__version__, "pymoo": _version("pymoo"),
                     "python": platform.python_version()},
        "cpu": {"model": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - (STARTED if started is None else started), 1),
    }


def stamp(data: dict, started: float | None = None, **extra) -> dict:
    """``data`` with a ``provenance`` entry (the run's; ``extra`` adds keys such as ``derived_from``)."""
    return {**data, "provenance": {**provenance(started), **extra}}
