"""The VGG width space shared by the `width` and `random` reference searches."""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass
from typing import ClassVar

from natkit.core.config import check_keys, read_toml, strip_descriptive
from natkit.core.evaluator import Evaluator
from natkit.core.options import Options, option
from natkit.core.space import SearchSpace
from natkit.errors import ConfigError
from natkit.measure import count_latency_if, measure
from natkit.nets import create_model
from natkit.train import TrainConfig, evaluate, train
from natkit.train.schedule import budget_of, scaled
from natkit.utils.seed import derive_seed, seed_everything

SPACE_KEYS = {"family", "layers", "pool_after", "choices", "hidden", "resolution"}


@dataclass
class WidthOptions(Options):
    """Options of the reference searches: the space file and the from-scratch training of a candidate
    (defaults from the space file's [train] table, then these)."""

    TOML_TABLES: ClassVar[dict] = {"train": ""}
    SPACE_FAMILY: ClassVar[str] = "vgg_widths"
    WHY_NOT: ClassVar[dict] = {"model": "it trains VGGs of the searched widths from scratch",
                               "weights": "it trains every candidate from scratch"}

    generations: int = option(10, quick=3, doc="NSGA-II generations (random: batches of pop_size samples)")
    pop_size: int = option(20, quick=6, doc="population size")
    space: str = option("vgg_widths", doc="space NAME or FILE with [space], optional [train] and [budget]")
    epochs: float = option(3.0, quick=3.0, doc="training epochs of each candidate")
    lr: float = option(0.1, doc="learning rate")
    batch_size: int = option(64, doc="batch size")
    max_batches: int | None = option(None, doc="cap on batches per epoch")
    weight_decay: float = option(5e-4, doc="weight decay")
    optimizer: str = option("sgd", doc="optimizer", choices=("sgd", "adam", "adamw"))
    label_smoothing: float = option(0.0, doc="label smoothing")

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, max_batches=self.max_batches,
                           weight_decay=self.weight_decay, optimizer=self.optimizer,
                           label_smoothing=self.label_smoothing)


class VGGWidthSpace(SearchSpace):
    """One gene per conv layer: an index into ``choices``."""

    def __init__(self, layers=6, pool_after=(2, 4, 6), choices=(4, 8, 12, 16, 24, 32, 48, 64), hidden=128,
                 resolution=28, family="vgg_widths"):
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= 64:
            raise ConfigError(f"space.layers must be an integer in 1..64, got {layers!r}")
        if not isinstance(choices, (list, tuple)) or not choices or \
                any(isinstance(c, bool) or not isinstance(c, int) or not 0 < c <= 8192 for c in choices):
            raise ConfigError(f"space.choices must be a non-empty list of integers in 1..8192, got {choices!r}")
        if not isinstance(pool_after, (list, tuple)):
            raise ConfigError(f"space.pool_after must be a list of layer numbers, got {pool_after!r}")
        if any(not isinstance(p, int) or not 1 <= p <= layers for p in pool_after):
            raise ConfigError(f"space.pool_after entries must lie in 1..{layers}, got {pool_after!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or not 0 < hidden <= 65536 or \
                isinstance(resolution, bool) or not isinstance(resolution, int) or not 8 <= resolution <= 1024:
            raise ConfigError(f"space.hidden must lie in 1..65536 and space.resolution in 8..1024, got hidden "
                              f"{hidden!r} and resolution {resolution!r}")
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
    if data["space"].get("family", "vgg_widths") != "vgg_widths":
        raise ConfigError(f"{data['_path']} is a {data['space']['family']!r} space, not vgg_widths")
    space = {k: v for k, v in strip_descriptive(data["space"]).items() if k != "family"}
    return VGGWidthSpace(**space)


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
    """Space, evaluator and HV bounds of the width space, as configured by ctx's options."""
    space = load_width_space(ctx.options.space)
    from natkit.core.feasibility import require_reachable
    from natkit.measure.counts import count_macs, count_params

    small = create_model("vgg", num_classes=ctx.task.num_classes, in_channels=ctx.task.in_channels,
                         **space.decode([int(np.argmin(space.choices))] * space.layers))  # all narrowest
    require_reachable(ctx.budget, {"params": count_params(small), "macs": count_macs(small, space.resolution,
                                                                                      ctx.task.in_channels)},
                      f"the width space {ctx.options.space}")
    stated = ctx.options.train_config()
    cfg = scaled(stated, len(ctx.task.train))  # steps, not epochs: see train/schedule.py
    ctx.stats["training_budget"] = budget_of(stated, len(ctx.task.train))
    ev = WidthEvaluator(ctx.task, space, cfg, seed=ctx.seed, device=ctx.device,
                        latency=ctx.wants_latency)
    big = create_model("vgg", num_classes=ctx.task.num_classes, in_channels=ctx.task.in_channels,
                       **space.decode(space.largest()))
    maxima = measure(big, space.resolution, ctx.task.in_channels, latency=ctx.wants_latency)
    return space, ev, ctx.bounds(maxima)
