"""A target (or source) task: in-memory splits plus the transforms a candidate needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32, N x C x H x W, values in [0, 1]
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Task:
    name: str
    spec: str
    num_classes: int
    train: Split
    val: Split
    test: Split
    source: str = ""
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        x = self.train.x
        self.in_channels = int(x.shape[1])
        self.image_size = int(x.shape[-1])
        self.mean = x.mean(dim=(0, 2, 3))
        self.std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size,
                "sizes": {s: len(self.split(s)) for s in ("train", "val", "test")}, "source": self.source}

    def transform(self, x: torch.Tensor, resolution: int | None = None, channels: int | None = None):
        """Normalise with the train split's statistics, resize, adapt 1<->3 channels."""
        # one new tensor, divided in place (x itself is the caller's, never modified)
        x = (x - self.mean.to(x.device).view(1, -1, 1, 1)).div_(self.std.to(x.device).view(1, -1, 1, 1))
        if resolution and resolution != x.shape[-1]:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
        if channels and channels != x.shape[1]:
            if x.shape[1] == 1:
                x = x.expand(-1, channels, -1, -1)
            elif channels == 1:
                x = x.mean(1, keepdim=True)
            else:
                raise ValueError(f"cannot adapt {x.shape[1]} channels to {channels}")
        return x

    def batches(self, split: str, batch_size: int, *, resolution=None, channels=None, shuffle=False,
                seed: int = 0, limit: int | None = None, device="cpu"):
        """Yield normalised ``(x, y)`` batches; ``limit`` caps the number of images (first ones, or a
        seeded random subset when shuffling)."""
        data = self.split(split)
        n = len(data)
        if shuffle:
            g = torch.Generator().manual_seed(int(seed))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if limit is not None:
            order = order[: int(limit)]
        n_used = len(order)
        for i in range(0, n_used, batch_size):
            j = min(i + batch_size, n_used)
            if shuffle:
                xb, yb = data.x[order[i:j]], data.y[order[i:j]]
            else:  # in order: a slice (a view) instead of a gather copy; transform() makes the new tensor
                xb, yb = data.x[i:j], data.y[i:j].clone()
            yield self.transform(xb.to(device, non_blocking=True), resolution, channels), yb.to(device, non_blocking=True)
