"""Parameter and MAC counts.

``macs`` follows the literature's convention (torchvision's model docs, OFA, NAT, fvcore): the
multiply-accumulates of convolutions and linear layers (matrix products) for one image at the
candidate's input resolution, bias additions left out; batch norm, activations, pooling and the adds of
residual joins are free. The count comes from torch's own ``FlopCounterMode``, which sees the aten
``convolution``/``mm``/``addmm``/``bmm`` calls of a forward pass, so grouped and depthwise
convolutions and functional calls (``F.conv2d`` with sliced weights in the NAT supernet) are counted
like modules; it reports FLOPs as 2 x MACs.

thop's total (which also charges batch norm, activations and pooling) stays available as
``count_macs_thop`` for comparison; docs/measurement.md says how far apart the two are.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    """Conv + linear multiply-accumulates of one batch-1 forward at ``resolution`` px."""
    return count_macs_for_input(model, torch.zeros(1, in_channels, resolution, resolution))


def count_macs_for_input(model: nn.Module, example: torch.Tensor) -> int:
    """Conv + linear multiply-accumulates per image of a forward on ``example`` (any shape)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = example.to(_device_of(model))
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # no batch-norm statistics may change while counting
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    finally:
        for m, was in modes:
            m.training = was
    return int(counter.get_total_flops()) // (2 * max(1, x.shape[0]))


def count_macs_thop(model: nn.Module, resolution: int, in_channels: int = 3) -> int:
    """thop's total for comparison only: conv + linear plus batch norm, activations and pooling."""
    import thop

    # thop attaches buffers and hooks; profile a copy so the caller's model stays clean
    clone = copy.deepcopy(model).cpu().eval()
    x = torch.zeros(1, in_channels, resolution, resolution)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        macs, _ = thop.profile(clone, inputs=(x,), verbose=False)
    return int(macs)


def _device_of(model: nn.Module):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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
