"""Parameter and MAC counts.

MACs come from thop (the reference counter) at batch 1 and the candidate's input resolution.
thop counts convolutions, linear layers, batch norm, pooling and element-wise activations it knows;
it does not count functional ops called inside ``forward`` (``torch.cat``, ``+`` of residual joins,
``F.interpolate``, ``flatten``), nor parameters of modules never called. Those are free or negligible
next to convolutions, and the published VGG/ResNet/DenseNet/MobileNetV3 counts leave them out too
(tests/test_measure.py checks thop against the published numbers).
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    import thop

    # thop attaches buffers and hooks; profile a copy so the caller's model stays clean
    clone = copy.deepcopy(model).cpu().eval()
    x = torch.zeros(1, in_channels, resolution, resolution)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        macs, _ = thop.profile(clone, inputs=(x,), verbose=False)
    return int(macs)


def measure(model: nn.Module, resolution: int, in_channels: int = 3, *, latency: bool = False,
            device="cpu") -> dict:
    out = {"params": count_params(model), "macs": count_macs(model, resolution, in_channels)}
    if latency:
        from natkit.measure.latency import measure_latency_ms

        out["latency_ms"] = measure_latency_ms(model, resolution, in_channels, device=device)
    return out


def count_latency_if(model: nn.Module, resolution: int, in_channels: int, latency: bool, device="cpu") -> dict:
    """``params`` and ``macs``, plus ``latency_ms`` when asked: what an evaluator reports."""
    return measure(model, resolution, in_channels, latency=latency, device=device)
