"""The VGG width space shared by the `width` and `random` reference searches."""

from __future__ import annotations

import numpy as np

from natkit.core.config import check_keys, read_toml, strip_descriptive
from natkit.core.evaluator import Evaluator
from natkit.core.space import SearchSpace
from natkit.errors import ConfigError
from natkit.measure import count_latency_if, measure
from natkit.nets import create_model
from natkit.train import TrainConfig, evaluate, train
from natkit.train.schedule import budget_of, scaled
from natkit.utils.seed import derive_seed, seed_everything

SPACE_KEYS = {"family", "layers", "pool_after", "choices", "hidden", "resolution"}
TRAIN_KEYS = {"epochs", "lr", "batch_size", "max_batches", "weight_decay", "optimizer", "label_smoothing"}


class VGGWidthSpace(SearchSpace):
    """One gene per conv layer: an index into ``choices``."""

    def __init__(self, layers=6, pool_after=(2, 4, 6), choices=(4, 8, 12, 16, 24, 32, 48, 64), hidden=128,
                 resolution=28, family="vgg_widths"):
        if not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"space.layers must be a positive integer, got {layers!r}")
        if not choices or any(not isinstance(c, int) or c <= 0 for c in choices):
            raise ConfigError(f"space.choices must be a non-empty list of positive integers, got {choices!r}")
        if any(not isinstance(p, int) or not 1 <= p <= layers for p in pool_after):
            raise ConfigError(f"space.pool_after entries must lie in 1..{layers}, got {pool_after!r}")
        if not isinstance(hidden, int) or hidden <= 0 or not isinstance(resolution, int) or resolution < 8:
            raise ConfigError("space.hidden must be positive and space.resolution at least 8")
        self.layers, self.pool_after, self.choices = layers, sorted(pool_after), list(choices)
        self.hidden, self.resolution = hidden, resolution
        self.xl = np.zeros(layers, dtype=int)
        self.xu = np.full(layers, len(choices) - 1, dtype=int)

    def decode(self, x) -> dict:
        widths = [self.choices[int(i)] for i in self.repair(x)]
        cfg: list = []
        for i, w in enumerate(widths, 1):
            cfg.append(w)
            if i in self.pool_after:
                cfg.append("M")
        return {"cfg": cfg, "hidden": [self.hidden]}

    def largest(self) -> list[int]:
        return [len(self.choices) - 1] * self.layers


def load_width_space(name_or_path="vgg_widths"):
    data = read_toml(name_or_path)
    if "space" not in data:
        raise ConfigError(f"{data['_path']} has no [space] table")
    check_keys(data["space"], SPACE_KEYS, f"[space] of {data['_path']}")
    check_keys(data.get("train", {}), TRAIN_KEYS, f"[train] of {data['_path']}")
    if data["space"].get("family", "vgg_widths") != "vgg_widths":
        raise ConfigError(f"{data['_path']} is a {data['space']['family']!r} space, not vgg_widths")
    return (VGGWidthSpace(**strip_descriptive(data["space"])), strip_descriptive(data.get("train", {})),
            data.get("budget"))


class WidthEvaluator(Evaluator):
    """Train the decoded VGG from scratch on the target's train split; error on val."""

    def __init__(self, task, space: VGGWidthSpace, train_cfg: TrainConfig, *, seed=0, device="cpu",
                 latency=False):
        self.task, self.space, self.cfg = task, space, train_cfg
        self.seed, self.device, self.latency = seed, device, latency

    def settings(self) -> dict:
        return {"space": self.space.describe(), "choices": self.space.choices, "hidden": self.space.hidden,
                "resolution": self.space.resolution, "train": self.cfg.to_dict(), "seed": self.seed,
                "n_train": len(self.task.train), "latency": self.latency}

    def _evaluate(self, encoding):
        arch = self.space.decode(encoding)
        res, ch = self.space.resolution, self.task.in_channels
        seed = derive_seed(self.seed, encoding)
        seed_everything(seed)  # the initial weights too, so a resumed run replays exactly
        model = create_model("vgg", num_classes=self.task.num_classes, in_channels=ch, **arch)
        model.natkit_input = {"resolution": res, "channels": ch}
        train(model, self.task, self.cfg, device=self.device, resolution=res, channels=ch,
              seed=seed)
        metrics = evaluate(model, self.task, "val", device=self.device, resolution=res, channels=ch)
        metrics = {"error": metrics["error"], **count_latency_if(model, res, ch, self.latency, self.device)}
        return metrics, model.natkit_arch, {"val_loss": None}, model.cpu()


def build_reference(ctx):
    """Space, evaluator and HV bounds of the width space, as configured by ctx (quick or full)."""
    unknown = sorted(set(ctx.options) - TRAIN_KEYS - {"space"})
    if unknown:
        raise ConfigError(f"unknown {ctx.method} option {unknown[0]!r}; known: {', '.join(sorted(TRAIN_KEYS))}")
    space, train_kw, _ = load_width_space(ctx.options.get("space", "vgg_widths"))
    from natkit.core.feasibility import require_reachable
    from natkit.measure.counts import count_macs, count_params

    small = create_model("vgg", num_classes=ctx.task.num_classes, in_channels=ctx.task.in_channels,
                         **space.decode([int(np.argmin(space.choices))] * space.layers))  # all narrowest
    require_reachable(ctx.budget, {"params": count_params(small), "macs": count_macs(small, space.resolution,
                                                                                      ctx.task.in_channels)},
                      f"the width space {ctx.options.get('space', 'vgg_widths')}")
    if ctx.quick:
        train_kw.update(epochs=min(train_kw.get("epochs", 3), 3))
    train_kw.update({k: ctx.options[k] for k in TRAIN_KEYS if k in ctx.options})
    cfg = scaled(TrainConfig(**train_kw), len(ctx.task.train))  # steps, not epochs: see train/schedule.py
    ctx.stats["training_budget"] = budget_of(TrainConfig(**train_kw), len(ctx.task.train))
    ev = WidthEvaluator(ctx.task, space, cfg, seed=ctx.seed, device=ctx.device,
                        latency="latency_ms" in ctx.objectives)
    big = create_model("vgg", num_classes=ctx.task.num_classes, in_channels=ctx.task.in_channels,
                       **space.decode(space.largest()))
    maxima = measure(big, space.resolution, ctx.task.in_channels, latency="latency_ms" in ctx.objectives)
    return space, ev, ctx.bounds(maxima)
