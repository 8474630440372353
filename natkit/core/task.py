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
        return self.transform_normalised(x, resolution, channels)

    def transform_normalised(self, x: torch.Tensor, resolution: int | None = None, channels: int | None = None):
        """``transform`` for images already normalised: resize, adapt 1<->3 channels."""
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

    def __getstate__(self):  # the normalised-split cache stays in this process (not sent to Dask workers)
        state = dict(self.__dict__)
        state.pop("_normalised", None)
        return state

    def _normalised_split(self, split: str, device) -> tuple:
        """A split normalised once, on ``device``: in-order evaluation slices views of it instead of
        normalising every batch again (measured: 6% of natkit's evaluate on resnet_small at batch 64,
        results/perf). Keyed by the split's tensor, so a replaced split is normalised afresh."""
        data = self.split(split)
        key = (split, str(device), id(data.x), data.x.data_ptr(), tuple(data.x.shape))
        cache = self.__dict__.setdefault("_normalised", {})
        if key not in cache:
            for k in [k for k in cache if k[0] == split and k[1] == str(device)]:
                del cache[k]  # an older version of this split
            cache[key] = (self.transform(data.x.to(device)), data.y.to(device))
        return cache[key]

    def batches(self, split: str, batch_size: int, *, resolution=None, channels=None, shuffle=False,
                seed: int = 0, limit: int | None = None, device="cpu"):
        """Yield normalised ``(x, y)`` batches; ``limit`` caps the number of images (first ones, or a
        seeded random subset when shuffling). In-order batches of the val and test splits are views of
        the split normalised once (``_normalised_split``); resizing and channel adaptation stay per batch."""
        data = self.split(split)
        if not shuffle and split in ("val", "test"):
            xs, ys = self._normalised_split(split, device)
            n_used = len(ys) if limit is None else min(len(ys), int(limit))
            for i in range(0, n_used, batch_size):
                j = min(i + batch_size, n_used)
                yield self.transform_normalised(xs[i:j], resolution, channels), ys[i:j]
            return
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
