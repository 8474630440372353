"""The objectives a run was searched with: what `natkit front`, `plot` and `report` default to."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT = ("error", "macs")


def searched_objectives(target, archive, methods=None) -> list[str]:
    """Objectives of the run in ``target`` (a run directory's ``run.json``), else of the newest run in
    ``archive`` (of ``methods`` when given) from its runs table, else error and MACs."""
    run_file = Path(target) / "run.json"
    if run_file.is_file():
        try:
            found = _parse(json.loads(run_file.read_text()).get("args", {}).get("objectives"))
        except (json.JSONDecodeError, AttributeError):
            found = None
        if found:
            return found
    for run in reversed(archive.runs()):
        if methods and run.method not in methods:
            continue
        found = _parse(run.config.get("objectives"))
        if found:
            return found
    return list(DEFAULT)


def _parse(value):
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        out = [str(v).strip() for v in value if str(v).strip()]
        return out if len(out) >= 2 else None
    return None
