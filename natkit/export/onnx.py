"""ONNX export of any natkit network, checked against PyTorch with onnxruntime at once.

The exported graph takes what the PyTorch model takes: a float32 ``N x C x H x W`` batch, already
normalised with the task's mean/std and resized to the candidate's resolution (``preprocess`` in the
export record says how). The batch dimension is fixed at 1 unless ``dynamic_batch`` is asked for.

torch's TorchScript-based exporter is used (``dynamo=False``): it needs only ``onnx``, while the
torch.export-based one would add ``onnxscript`` as a dependency for the same plain CNN graphs.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from natkit.errors import ConfigError, NatkitError

OPSET = 17
TOLERANCE = 1e-4  # max |logit difference| onnxruntime vs PyTorch on the check images
INPUT, OUTPUT = "input", "logits"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a dependency, but fail clearly if it is missing
        raise NatkitError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnxruntime


def export_onnx(model: nn.Module, path, *, resolution: int, channels: int, dynamic_batch: bool = False,
                opset: int = OPSET) -> Path:
    """Write ``model`` (a copy in eval mode, on the CPU) as an ONNX file and validate the file."""
    import onnx

    if opset < 17:
        raise ConfigError(f"ONNX opset must be >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).cpu().eval()
    x = torch.zeros(1, channels, resolution, resolution)
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(net, (x,), str(path), opset_version=opset, dynamo=False, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes=axes, do_constant_folding=True)
    onnx.checker.check_model(str(path))
    return path


def session(path, threads: int = 1):
    """An onnxruntime CPU session with a fixed number of intra-op threads (inter-op 1)."""
    ort = _onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess, x: np.ndarray) -> np.ndarray:
    """Logits for a batch; a fixed batch-1 graph is fed one image at a time."""
    shape = sess.get_inputs()[0].shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    if isinstance(shape[0], int) and shape[0] != x.shape[0]:
        return np.concatenate([sess.run(None, {INPUT: x[i: i + shape[0]]})[0] for i in range(0, len(x), shape[0])])
    return sess.run(None, {INPUT: x})[0]


def compare(model: nn.Module, path, images: torch.Tensor, *, tolerance: float = TOLERANCE) -> dict:
    """onnxruntime's logits against PyTorch's on ``images`` (normalised, at the model's input size)."""
    net = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        ref = net(images.cpu().float()).numpy()
    got = run(session(path, threads=1), images.cpu().numpy())
    diff = np.abs(got - ref)
    return {"images": int(len(images)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "same_top1": float(np.mean(got.argmax(1) == ref.argmax(1))), "tolerance": tolerance,
            "ok": bool(diff.max() <= tolerance)}


def file_record(path) -> dict:
    p = Path(path)
    return {"file": p.name, "bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def export_checked(model: nn.Module, path, *, resolution: int, channels: int, images: torch.Tensor,
                   images_source: str, dynamic_batch: bool = False, opset: int = OPSET) -> dict:
    """Export, then check at once; returns the record that goes into ``candidate.json``."""
    export_onnx(model, path, resolution=resolution, channels=channels, dynamic_batch=dynamic_batch, opset=opset)
    ort = _onnxruntime()
    check = compare(model, path, images)
    check["images_source"] = images_source
    return {**file_record(path), "opset": opset, "input": INPUT, "output": OUTPUT,
            "input_shape": ["batch" if dynamic_batch else 1, channels, resolution, resolution],
            "dynamic_batch": bool(dynamic_batch), "onnxruntime": ort.__version__, "check": check}
