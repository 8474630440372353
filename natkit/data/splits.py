"""Checks and seeded splits shared by every loader."""

from __future__ import annotations

import numpy as np
import torch

from natkit.core.task import Split
from natkit.errors import DataError


def as_images(x: np.ndarray, name: str) -> torch.Tensor:
    """Return float32 N x C x H x W in [0, 1] from N x H x W, N x C x H x W or N x H x W x C."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{name}: images must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        if x.shape[1] not in (1, 3):
            raise DataError(f"{name}: images need 1 or 3 channels, got shape {x.shape}")
    else:
        raise DataError(f"{name}: images must have rank 3 or 4 (N,H,W[,C]), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[2] < 2 or x.shape[3] < 2:
        raise DataError(f"{name}: no usable images (shape {x.shape})")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{name}: images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0:
        raise DataError(f"{name}: pixel values must be non-negative, found {lo}")
    if hi > 1.0:
        x = x / (255.0 if hi > 16.0 else hi)
    return torch.from_numpy(np.ascontiguousarray(x))


def as_labels(y: np.ndarray, n: int, name: str, num_classes: int | None = None) -> tuple[torch.Tensor, int]:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name}: labels must be a vector of {n} entries, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{name}: labels must be integers, got dtype {y.dtype}")
    if y.size == 0:
        raise DataError(f"{name}: no labels")
    if y.min() < 0:
        raise DataError(f"{name}: label {int(y.min())} out of range (labels start at 0)")
    if num_classes is None and int(y.max()) >= n:  # labels are 0..K-1 and every class needs a sample
        raise DataError(f"{name}: label {int(y.max())} out of range: {n} samples cannot cover "
                        f"{int(y.max()) + 1} classes (labels must be 0..K-1)")
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if y.max() >= k:
        raise DataError(f"{name}: label {int(y.max())} out of range for {k} classes")
    counts = np.bincount(y, minlength=k)
    if (counts == 0).any():
        raise DataError(f"{name}: class {int(np.argmin(counts))} has no samples (labels must be 0..K-1)")
    return torch.from_numpy(y.astype(np.int64)), k


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (rest, carved) with ``fraction`` of every class carved out, seeded."""
    rng = np.random.default_rng(seed)
    rest, carved = [], []
    yn = y.numpy()
    for c in np.unique(yn):
        idx = np.flatnonzero(yn == c)
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        carved.append(idx[:k])
        rest.append(idx[k:])
    return torch.from_numpy(np.sort(np.concatenate(rest))), torch.from_numpy(np.sort(np.concatenate(carved)))


def take(split: Split, idx: torch.Tensor) -> Split:
    return Split(split.x[idx], split.y[idx])


def per_class(split: Split, n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    keep = []
    yn = split.y.numpy()
    for c in np.unique(yn):
        idx = np.flatnonzero(yn == c)
        rng.shuffle(idx)
        keep.append(idx[:n])
    return take(split, torch.from_numpy(np.sort(np.concatenate(keep))))


def select_classes(split: Split, classes: list[int]) -> Split:
    remap = {c: i for i, c in enumerate(classes)}
    mask = torch.zeros_like(split.y, dtype=torch.bool)
    for c in classes:
        mask |= split.y == c
    y = split.y[mask].clone()
    for c, i in remap.items():
        y[split.y[mask] == c] = i
    return Split(split.x[mask], y)
