"""Latency: the one place natkit's measurement protocol is written.

Protocol (every ``latency_ms`` natkit measures or predicts follows it):

- **batch 1**, one input of the candidate's resolution and channels (seeded standard-normal values);
- **threads fixed**: PyTorch ``torch.set_num_threads(threads)`` for the call (restored afterwards);
  onnxruntime ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1``, sequential execution,
  full graph optimisation (onnxruntime's default), CPU execution provider;
- **warm-up** runs (default 5) are discarded, then **repeats** timed runs (default 20) with
  ``time.perf_counter`` around each forward (CUDA synchronised before and after);
- the reported value is the **median** of the timed runs, in milliseconds.

Three runtimes, chosen by a ``[hardware]`` table in a budget TOML (see ``HardwareSetting``):
``torch`` (eager PyTorch on this host, the default), ``onnxruntime`` (the model exported to ONNX as
``natkit export`` writes it, timed in onnxruntime on this host), ``table`` (predicted without the
device from a latency table measured on it: ``natkit profile``, or an OFA/nsganetv2 YAML LUT for NAT's
MobileNetV3 space; see ``natkit/measure/tables.py``).

The setting is process-wide and also travels in ``$NATKIT_HARDWARE`` (JSON), so local Dask workers
started by the search inherit it.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from natkit.errors import ConfigError

RUNTIMES = ("torch", "onnxruntime", "table")
HARDWARE_KEYS = {"runtime", "threads", "warmup", "repeats", "table"}
ENV = "NATKIT_HARDWARE"


@dataclass(frozen=True)
class HardwareSetting:
    runtime: str = "torch"
    threads: int = 1
    warmup: int = 5
    repeats: int = 20
    table: str | None = None  # path of a latency table (natkit JSON or OFA YAML LUT) when runtime = "table"

    def __post_init__(self):
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"[hardware] runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        for k in ("threads", "repeats"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"[hardware] {k} must be a positive integer, got {v!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"[hardware] warmup must be a non-negative integer, got {self.warmup!r}")
        if (self.runtime == "table") != (self.table is not None):
            raise ConfigError("[hardware] table = FILE goes with runtime = \"table\" (and only with it)")

    @classmethod
    def from_table(cls, table: dict, base_dir=None) -> "HardwareSetting":
        from natkit.core.config import check_keys

        check_keys(table, HARDWARE_KEYS, "[hardware]")
        kw = dict(table)
        if "table" in kw:
            kw.setdefault("runtime", "table")
            p = Path(str(kw["table"])).expanduser()
            if not p.is_absolute() and base_dir is not None and (Path(base_dir) / p).is_file():
                p = Path(base_dir) / p
            if not p.is_file():
                from natkit.measure.tables import resolve_table

                p = resolve_table(str(kw["table"]))  # a table shipped in natkit/search_spaces/tables/, by name
            kw["table"] = str(p.resolve())
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)

    def is_default(self) -> bool:
        return self == HardwareSetting()

    def describe(self) -> str:
        if self.runtime == "table":
            return f"predicted from latency table {self.table}"
        return f"{self.runtime}, {self.threads} thread(s), median of {self.repeats} after {self.warmup} warm-up, batch 1"


def configure(setting: HardwareSetting | None) -> None:
    """Make ``setting`` the process's latency protocol (None: back to the default)."""
    if setting is None or setting.is_default():
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = json.dumps(setting.to_dict())


def current_setting() -> HardwareSetting:
    raw = os.environ.get(ENV)
    if not raw:
        return HardwareSetting()
    try:
        return HardwareSetting(**json.loads(raw))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"${ENV} is not a valid hardware setting: {exc}") from None


def measure_latency_ms(model: nn.Module, resolution: int, in_channels: int = 3, *, device="cpu",
                       repeats: int | None = None, warmup: int | None = None, threads: int | None = None,
                       setting: HardwareSetting | None = None) -> float:
    """``latency_ms`` of ``model`` under ``setting`` (default: the configured one); explicit
    ``repeats``/``warmup``/``threads`` override it."""
    s = setting or current_setting()
    warmup = s.warmup if warmup is None else warmup
    repeats = s.repeats if repeats is None else repeats
    threads = s.threads if threads is None else threads
    if s.runtime == "table":
        from natkit.measure.tables import load_table

        return load_table(s.table).predict_model(model, resolution, in_channels)
    if s.runtime == "onnxruntime" and not str(device).startswith("cuda"):
        return onnxruntime_latency_ms(model, resolution, in_channels, threads=threads, warmup=warmup,
                                      repeats=repeats)
    return torch_latency_ms(model, resolution, in_channels, device=device, threads=threads, warmup=warmup,
                            repeats=repeats)


def _input(resolution, in_channels) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, in_channels, resolution, resolution)).astype(np.float32)


def torch_latency_ms(model: nn.Module, resolution: int, in_channels: int = 3, *, device="cpu", threads: int = 1,
                     warmup: int = 5, repeats: int = 20) -> float:
    previous = torch.get_num_threads()
    changed = bool(threads) and threads != previous  # no thread-pool churn when the count already fits
    if changed:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    x = torch.from_numpy(_input(resolution, in_channels)).to(device)
    try:
        with torch.no_grad():
            times = timed(lambda: model(x), warmup, repeats, sync=lambda: _sync(device))
    finally:
        if changed:
            torch.set_num_threads(previous)
        model.train(was_training)
    return float(statistics.median(times))


def onnxruntime_latency_ms(model: nn.Module, resolution: int, in_channels: int = 3, *, threads: int = 1,
                           warmup: int = 5, repeats: int = 20) -> float:
    """The model exported as ``natkit export`` does it, timed in onnxruntime."""
    from natkit.export.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="natkit-lat-") as d:
        path = export_onnx(model, Path(d) / "m.onnx", resolution=resolution, channels=in_channels)
        return onnx_file_latency_ms(path, threads=threads, warmup=warmup, repeats=repeats)


def onnx_file_latency_ms(path, *, threads: int = 1, warmup: int = 5, repeats: int = 20) -> float:
    from natkit.export.onnx import session

    sess = session(path, threads=threads)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = {inp.name: _input(shape[-1], shape[1]) if len(shape) == 4 else np.zeros(shape, np.float32)}
    return float(statistics.median(timed(lambda: sess.run(None, x), warmup, repeats)))


def timed(fn, warmup: int, repeats: int, sync=None) -> list[float]:
    """Milliseconds of each of ``repeats`` calls after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
