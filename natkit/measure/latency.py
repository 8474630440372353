"""Latency: median wall time of a batch-1 forward after warm-up, thread count fixed."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn


def measure_latency_ms(model: nn.Module, resolution: int, in_channels: int = 3, *, device="cpu",
                       repeats: int = 20, warmup: int = 5, threads: int | None = 1) -> float:
    previous = torch.get_num_threads()
    changed = bool(threads) and threads != previous  # no thread-pool churn when the count already fits
    if changed:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    x = torch.randn(1, in_channels, resolution, resolution, device=device)
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                _sync(device)
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
    finally:
        if changed:
            torch.set_num_threads(previous)
        model.train(was_training)
    return float(statistics.median(times))


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
