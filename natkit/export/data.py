"""The images an export is checked, calibrated and scored on: the run's own task, reloaded from
``run.json`` with the run's seed and subset options, so its splits are the ones the search used."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from natkit.errors import NatkitError


def load_run_task(run_dir) -> tuple[object | None, str]:
    """``(task, description)``; ``(None, why)`` when the run's task cannot be loaded here."""
    run = Path(run_dir) / "run.json"
    if not run.is_file():
        return None, f"no run.json in {run_dir}"
    try:
        args = json.loads(run.read_text()).get("args", {})
    except json.JSONDecodeError:
        return None, f"corrupt {run}"
    from natkit.data import load_task

    spec = args.get("task")
    classes = args.get("classes")
    if isinstance(classes, str):
        classes = [int(c) for c in classes.split(",")]
    try:
        task = load_task(spec, root=args.get("data_root"), seed=int(args.get("seed", 0)),
                         samples_per_class=args.get("samples_per_class"), classes=classes)
    except (NatkitError, ValueError, TypeError) as exc:
        return None, f"task {spec!r} of the run could not be loaded: {exc}"
    return task, f"task {task.spec} ({task.source})"


def split_images(task, split: str, *, resolution: int, channels: int, limit: int | None = None):
    """Normalised images and labels of one split, at the candidate's input size."""
    xs, ys = [], []
    for xb, yb in task.batches(split, 256, resolution=resolution, channels=channels, limit=limit):
        xs.append(xb)
        ys.append(yb)
    return torch.cat(xs), torch.cat(ys)


def synthetic_images(n: int, *, resolution: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Deterministic stand-ins (standard normal, like normalised images) when no task is at hand."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, resolution, resolution, generator=g)


def check_images(task, n: int, *, resolution: int, channels: int, why: str = "") -> tuple[torch.Tensor, str]:
    """Up to ``n`` validation images of the task, or ``n`` seeded normal images (and the reason)."""
    if task is not None:
        x, _ = split_images(task, "val", resolution=resolution, channels=channels, limit=n)
        return x, f"{len(x)} validation images of {task.spec}"
    return synthetic_images(n, resolution=resolution, channels=channels), \
        f"{n} seeded standard-normal images (seed 0): {why}"
