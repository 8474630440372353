"""int8 deployment: onnxruntime's static quantization of the exported graph, calibrated on training
images of the run's task, and the numbers to judge it by next to fp32 (validation and test error, file
size, onnxruntime latency), so a front member's accuracy drop is visible before it ships."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from natkit.errors import ConfigError

CALIBRATION_IMAGES = 256
LATENCY_ROUNDS = 5


def quantize(fp32_path, int8_path, calibration: np.ndarray, *, per_channel: bool = True) -> dict:
    """Static QDQ quantization (uint8 activations, int8 weights, min-max calibration)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from natkit.export.onnx import INPUT

    class Reader(CalibrationDataReader):
        def __init__(self, x):
            self.batches = iter([{INPUT: x[i: i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="natkit-int8-") as d:
        prepared = Path(d) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(int8_path), Reader(np.ascontiguousarray(calibration, np.float32)),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax)
    return {"format": "QDQ", "activations": "uint8", "weights": "int8", "per_channel": per_channel,
            "calibration": "MinMax", "calibration_images": int(len(calibration))}


def onnx_error(path, x: np.ndarray, y: np.ndarray) -> float:
    from natkit.export.onnx import run, session

    logits = run(session(path, threads=1), x)
    return float(np.mean(logits.argmax(1) != y))


def paired_latency(paths, *, threads: int = 1, rounds: int = LATENCY_ROUNDS) -> list[float]:
    """The latency protocol for several files at once, interleaved so the machine's load hits all alike:
    each round runs every file's warm-up and timed runs; the value is the median over all timed runs."""
    from natkit.export.onnx import session
    from natkit.measure.latency import current_setting, timed

    s = current_setting()
    sessions = [session(p, threads=threads) for p in paths]
    feeds = []
    for sess in sessions:
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds.append({inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)})
    times: list = [[] for _ in paths]
    for _ in range(rounds):
        for i, (sess, feed) in enumerate(zip(sessions, feeds)):
            times[i] += timed(lambda: sess.run(None, feed), s.warmup, s.repeats)
    return [float(statistics.median(t)) for t in times]


def quantize_candidate(model, out: Path, task, why: str, resolution: int, channels: int, *, fp32: dict,
                       threads: int = 1, log=print) -> dict:
    """``out/model.int8.onnx`` from ``out/model.onnx``; returns the int8 record for ``candidate.json``."""
    from natkit.export.data import split_images
    from natkit.export.onnx import file_record

    if task is None:
        raise ConfigError(f"--int8 calibrates on the run's training images and scores on its validation and test "
                          f"splits, but {why}")
    fp32_path, int8_path = out / "model.onnx", out / "model.int8.onnx"
    train = task.batches("train", 256, resolution=resolution, channels=channels, shuffle=True, seed=0,
                         limit=CALIBRATION_IMAGES)
    calib = np.concatenate([xb.numpy() for xb, _ in train])
    settings = quantize(fp32_path, int8_path, calib)
    rec = {**file_record(int8_path), **settings, "calibration_split": "train"}
    fp = {"bytes": fp32["bytes"]}
    for split in ("val", "test"):
        x, y = split_images(task, split, resolution=resolution, channels=channels)
        x, y = x.numpy(), y.numpy()
        fp[f"{split}_error"] = onnx_error(fp32_path, x, y)
        rec[f"{split}_error"] = onnx_error(int8_path, x, y)
    fp["latency_ms"], rec["latency_ms"] = paired_latency([fp32_path, int8_path], threads=threads)
    rec.update(threads=threads, fp32=fp, speedup=fp["latency_ms"] / rec["latency_ms"],
               size_ratio=rec["bytes"] / fp["bytes"],
               val_error_change=rec["val_error"] - fp["val_error"], test_error_change=rec["test_error"] - fp["test_error"])
    log(f"{'':6}{'val error':>10}{'test error':>11}{'bytes':>12}{'latency ms':>12}   (onnxruntime, {threads} thread(s))")
    for name, r in (("fp32", fp), ("int8", rec)):
        log(f"{name:6}{r['val_error']:10.4f}{r['test_error']:11.4f}{r['bytes']:12,}{r['latency_ms']:12.4f}")
    log(f"int8: {int8_path}; test error {100 * rec['test_error_change']:+.2f} points, {rec['speedup']:.2f}x speed, "
        f"{rec['size_ratio']:.2f}x size")
    return rec
