"""Shared pieces of the scale benchmarks (importable by Dask workers: this folder is on their sys.path)."""

from __future__ import annotations

import json
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


def update_claims(out_dir: Path, source: str, claims: list[dict]) -> Path:
    """results/scale/claims.json is written by two scripts: replace only this script's claims."""
    path = out_dir / "claims.json"
    data = json.loads(path.read_text()) if path.is_file() else {"claims": []}
    data["claims"] = [c for c in data.get("claims", []) if c.get("source") != source] + \
        [{**c, "source": source} for c in claims]
    order = {"scale_throughput": 0, "scale_costmodel": 1}
    data["claims"].sort(key=lambda c: order.get(c.get("source"), 9))
    path.write_text(json.dumps(data, indent=2))
    return path
