"""Stamp and timing helpers shared by the perf and scale benchmarks."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stamp(t_start: float | None = None) -> dict:
    """What every results file carries: commit (+dirty), exact command, versions, CPU, load, wall time."""
    import numpy
    import torch

    from natkit.report.provenance import AT_START

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for name in ("distributed", "pymoo"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    # commit and dirty flag by the rule of every provenance: the code as it was when the process started
    # (a commit made during a long run is not credited with it; results/ excluded: results written by
    # other benchmarks in the same tree do not make this run's code dirty)
    out = {**AT_START, "command": " ".join([os.path.basename(sys.executable), *sys.orig_argv[1:]]),
           "versions": versions, "cpu": {"model": cpu_model(), "count": os.cpu_count(),
                                          "torch_threads": torch.get_num_threads()},
           "load_avg": list(os.getloadavg())}
    if t_start is not None:
        out["wall_s"] = round(time.time() - t_start, 1)
    return out


def timed(fn, *args, **kw) -> float:
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def write_json(path: Path, data, default=str) -> Path:
    """``data`` as JSON at ``path``, atomically (a file holding finished runs is never truncated in place);
    ``default`` converts what JSON cannot hold (``float`` for numpy scalars)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=default))
    os.replace(tmp, path)
    return path


def read_claims_toml(ids=None) -> list[dict]:
    """The registered claims (benchmarks/claims.toml), optionally only those with the given ids."""
    import tomllib

    data = tomllib.loads((ROOT / "benchmarks" / "claims.toml").read_text())
    claims = data.get("claim", [])
    return [c for c in claims if ids is None or c["id"] in ids]
