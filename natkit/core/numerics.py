"""Settings that change an evaluation's numbers without changing what is evaluated.

Torch's CPU kernels split reductions by thread, so one seed trained under 1 and under 2 threads gives
different weights (we measured different fronts). Every evaluation therefore runs under a fixed torch
thread count -- ``--threads`` or 1, the same in this process and on Dask workers -- and that count, the
process's own thread count (pretraining, supernet adaptation), the device, torch's deterministic flag and
the convolution memory layout (``CONV_LAYOUT``) are part of every eval key, so an archive never mixes results computed under different settings.
"""

from __future__ import annotations

from contextlib import contextmanager

_EVAL_THREADS = 1
# the memory layout of convolutions in natkit.train's loops (a different layout runs other kernels: other
# floating-point results); part of every eval key like the thread count
CONV_LAYOUT = "channels_last"


def set_eval_threads(n: int | None) -> None:
    """Torch threads of every evaluation from now on (``None``: 1)."""
    global _EVAL_THREADS
    _EVAL_THREADS = 1 if n is None else int(n)


def eval_threads() -> int:
    return _EVAL_THREADS


def numerics(device: str | None = None) -> dict:
    import torch

    return {"eval_threads": _EVAL_THREADS, "threads": torch.get_num_threads(),
            "device": str(device or "cpu"), "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
            "layout": CONV_LAYOUT}


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads, restoring the previous count after."""
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def file_digest(path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits): a weights file's identity in eval keys."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
