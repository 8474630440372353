"""What ``natkit export DIR --id N --format onnx [--dynamic-batch] [--int8]`` does after the candidate's
stored model is found: export, check at once, and record the check in ``candidate.json``."""

from __future__ import annotations

from pathlib import Path

from natkit.errors import ConfigError, NatkitError
from natkit.export.data import check_images, load_run_task

CHECK_IMAGES = 64


def input_size(model, task) -> tuple[int, int]:
    inp = getattr(model, "natkit_input", None) or {}
    res, ch = inp.get("resolution"), inp.get("channels")
    if task is not None:
        res, ch = res or task.image_size, ch or task.in_channels
    if not res or not ch:
        raise ConfigError("the stored model does not record its input size and the run's task cannot be "
                          "loaded to tell it")
    return int(res), int(ch)


def preprocess(task, resolution: int, channels: int) -> dict:
    """What a deployment must do to an image in [0, 1] before feeding the ONNX graph."""
    out = {"input_range": "[0, 1] per pixel, then (x - mean) / std per channel of the source image",
           "resolution": resolution, "channels": channels, "resize": "bilinear, align_corners=False"}
    if task is not None:
        out.update(mean=[float(v) for v in task.mean], std=[float(v) for v in task.std],
                   image_channels=task.in_channels,
                   channel_adaptation="1 -> 3: repeat; 3 -> 1: mean" if channels != task.in_channels else "none")
    return out


def export_onnx_candidate(model, run_dir, out: Path, *, dynamic_batch: bool = False, int8: bool = False,
                          threads: int = 1, log=print) -> dict:
    """Write ``out/model.onnx`` (and ``model.int8.onnx``), check them; returns the record for
    ``candidate.json``. A failed logits check is an error, after the record is written by the caller."""
    from natkit.export.onnx import export_checked

    task, why = load_run_task(run_dir)
    res, ch = input_size(model, task)
    images, source = check_images(task, CHECK_IMAGES, resolution=res, channels=ch, why=why)
    if task is None:
        log(f"note: checking on synthetic images: {why}")
    rec = export_checked(model, out / "model.onnx", resolution=res, channels=ch, images=images,
                         images_source=source, dynamic_batch=dynamic_batch)
    c = rec["check"]
    log(f"onnx fp32: {out / 'model.onnx'} (opset {rec['opset']}, input {rec['input_shape']}, {rec['bytes']:,} bytes); "
        f"onnxruntime vs PyTorch on {source}: max |diff| {c['max_abs_diff']:.2e} "
        f"({'ok' if c['ok'] else 'FAILED'}, tolerance {c['tolerance']:g})")
    record = {"onnx": rec, "preprocess": preprocess(task, res, ch)}
    if int8:
        from natkit.export.int8 import quantize_candidate

        record["int8"] = quantize_candidate(model, out, task, why, res, ch, fp32=rec, threads=threads, log=log)
    return record


def raise_if_check_failed(record: dict) -> None:
    c = record["onnx"]["check"]
    if not c["ok"]:
        raise NatkitError(f"onnxruntime's logits differ from PyTorch's by {c['max_abs_diff']:.2e} > "
                          f"{c['tolerance']:g}; the export and the check are recorded in candidate.json")
