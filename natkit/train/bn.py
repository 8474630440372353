"""Batch-norm recalibration on a fixed, cached calibration subset (weight-sharing evaluation)."""

from __future__ import annotations

import torch
import torch.nn as nn

_CALIB: dict = {}


def calibration_batches(task, n_images: int = 500, batch_size: int = 100, *, resolution=None, channels=None,
                        seed: int = 0) -> list[torch.Tensor]:
    """The same seeded train images every call (cached per arguments), already transformed."""
    key = (id(task), n_images, batch_size, resolution, channels, seed)
    if key not in _CALIB:
        _CALIB[key] = [x for x, _ in task.batches("train", batch_size, resolution=resolution, channels=channels,
                                                  shuffle=True, seed=seed, limit=n_images)]
    return _CALIB[key]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches, device="cpu") -> nn.Module:
    """Reset BN running statistics and re-estimate them as exact averages over ``batches``."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    for x in batches:
        model(x.to(device))
    for m, mom in saved:
        m.momentum = mom
    model.train(was_training)
    return model
