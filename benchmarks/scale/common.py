"""Shared pieces of the scale benchmarks (importable by Dask workers as ``benchmarks.scale.common``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from natkit.core.evaluator import Evaluator

ROOT = Path(__file__).resolve().parents[2]


class NullEvaluator(Evaluator):
    """Does no work: what remains of a candidate's wall time is the runner's own overhead."""

    def _evaluate(self, encoding):
        return {"error": 0.5, "params": float(sum(encoding)), "macs": float(encoding[0])}, None, {}


def distinct_encodings(space, n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    while len(out) < n:
        for x in space.sample(4 * n, rng):
            key = tuple(int(v) for v in x)
            if key not in seen:
                seen.add(key)
                out.append(list(key))
            if len(out) == n:
                break
    return out


def host() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}
