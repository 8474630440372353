"""Knowledge Evolution (Taha, Shrivastava, Davis; CVPR 2021) as a multi-objective problem.

A network trained from scratch on a small target is split into a fit and a reset hypothesis
(``natkit/methods/ke_split.py``: KELS by default, WELS for comparison). Generation 1 is ordinary
training. Every later generation keeps the fit hypothesis, re-draws the reset hypothesis
(Kaiming-uniform, a = sqrt(5)) and trains all weights again for ``e`` epochs with a fresh optimiser and
learning-rate schedule. Under KELS the fit hypothesis is itself a network of the same family at width
factor ``s``: the slim network, used for inference without further training.

The decision vector is (split-rate level, generations G, epochs per generation e); one evaluation
trains G generations and reports the slim network of generation G (``error`` on val, ``params``,
``macs``). Generation g of a G-generation run is exactly the last generation of a g-generation run
(seeds depend on the run seed, e, g and, for masks and resets, s; never on G), so every generation
g <= G is archived with method ``ke``: the slim network under encoding (s, g, e) -- a later proposal
of it is read back, not trained -- and the dense network under (s, g, e) with its own evaluation key
(``variant=dense``). Objectives are the run's (``--objectives error,params,macs`` for the issue's three);
``error``, ``params`` and ``macs`` are archived for every candidate either way.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from natkit.core.evaluator import EvalResult, Evaluator
from natkit.train.schedule import scaled
from natkit.core.problem import ArchiveProblem
from natkit.core.space import SearchSpace
from natkit.core.options import Options as BaseOptions, option
from natkit.errors import ConfigError
from natkit.methods.common import finalize
from natkit.measure import measure
from natkit.methods.ke.split import extract_slim, reset_hypothesis, scaled_arch, split_masks
from natkit.nets import build_from_arch, create_model
from natkit.train import TrainConfig, calibration_batches, evaluate, recalibrate_bn, train
from natkit.utils.seed import derive_seed

METHOD = "ke"


@dataclass
class Options(BaseOptions):
    """The options of ``natkit search ke``."""

    WHY_NOT: ClassVar[dict] = {
        "space": "its space is (split rate, generations, epochs), set by the rate_*, max_generations and epochs_* "
                 "options",
        "weights": "knowledge evolution trains its network from scratch on the target"}

    generations: int = option(10, quick=2, doc="NSGA generations")
    pop_size: int = option(20, quick=4, doc="population size")
    split: str = option("kels", doc="KELS (kernel-level, slim network) or WELS (weight-level)", choices=("kels", "wels"))
    model: str = option("vgg_small", doc="network trained from scratch")
    rate_min: float = option(0.2, doc="smallest split rate")
    rate_max: float = option(0.8, doc="largest split rate")
    rate_step: float = option(0.1, doc="split-rate step")
    max_generations: int = option(5, quick=4, doc="most KE generations of one evaluation")
    epochs_min: int = option(2, quick=2, doc="fewest epochs per generation")
    epochs_max: int = option(10, quick=4, doc="most epochs per generation")
    val_limit: int | None = option(None, quick=1000, doc="cap on validation images")
    resolution: int | None = option(None, doc="input resolution (default: the task's image size)")
    slim_bn: str = option("copy", doc="slim network's BatchNorm statistics", choices=("copy", "recalibrate"))
    lr: float = option(0.05, doc="learning rate")
    momentum: float = option(0.9, doc="SGD momentum")
    weight_decay: float = option(5e-4, doc="weight decay")
    optimizer: str = option("sgd", doc="optimizer", choices=("sgd", "adam", "adamw"))
    schedule: str = option("cosine", doc="learning-rate schedule", choices=("cosine", "constant"))
    label_smoothing: float = option(0.0, doc="label smoothing")
    batch_size: int = option(32, doc="batch size (small data: more steps per epoch)")
    max_batches: int | None = option(None, quick=40, doc="cap on batches per epoch")

    def check(self) -> None:
        if not 0 < self.rate_min <= self.rate_max <= 1 or self.rate_step <= 0:
            raise ConfigError(f"KE split rates need 0 < rate_min <= rate_max <= 1 and rate_step > 0, "
                              f"got {self.rate_min}, {self.rate_max}, {self.rate_step}")

    def val_images(self) -> int | None:
        return self.val_limit  # dense and slim networks are measured on the first val_limit images


# ------------------------------------------------------------------------------------------ space


class KESpace(SearchSpace):
    """Genes: split-rate level (``rates[i]``), number of generations, epochs per generation."""

    def __init__(self, rates=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), generations=(1, 5), epochs=(2, 10)):
        rates = [float(r) for r in rates]
        if not rates or any(not 0 < r <= 1 for r in rates):
            raise ConfigError(f"KE split rates must lie in (0, 1], got {rates!r}")
        for label, (lo, hi) in (("generations", generations), ("epochs", epochs)):
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
                raise ConfigError(f"KE {label} range must be integers 1 <= min <= max, got {(lo, hi)!r}")
        self.rates, self.gen_range, self.epoch_range = rates, tuple(generations), tuple(epochs)
        self.xl = np.array([0, generations[0], epochs[0]], dtype=int)
        self.xu = np.array([len(rates) - 1, generations[1], epochs[1]], dtype=int)

    def decode(self, x) -> dict:
        r, g, e = self.repair(x)
        return {"split_rate": self.rates[r], "generations": int(g), "epochs": int(e)}

    def encode(self, split_rate: float, generations: int, epochs: int) -> list[int]:
        r = int(np.argmin([abs(split_rate - q) for q in self.rates]))
        return [r, int(generations), int(epochs)]

    def describe(self) -> dict:
        return {**super().describe(), "rates": self.rates}


# ------------------------------------------------------------------------------------ the process


@dataclass
class Generation:
    """One generation's outcome: dense and (KELS) slim metrics, the slim network and (if kept) the dense one."""

    generation: int
    dense: dict
    slim: dict | None
    dense_model: object = field(default=None, repr=False)
    slim_model: object = field(default=None, repr=False)


def evolve(model, task, split_rate: float, generations: int, cfg: TrainConfig, *, mode: str = "kels",
           seed: int = 0, device="cpu", resolution=None, channels=None, split: str = "val",
           limit=None, keep_models: bool = False, recalibrate_slim: bool = False,
           on_generation=None) -> list[Generation]:
    """Train ``model`` for ``generations`` generations of ``cfg.epochs`` epochs each (in place).

    After each generation the dense network and (KELS) the slim network are evaluated on ``split``.
    The split masks are drawn once, before generation 1, and stay fixed (as in the paper). Training
    seeds depend on ``seed`` and g only, so generation 1 (ordinary training) is the same for every s.
    The slim network carries the dense network's BN statistics (the paper); ``recalibrate_slim``
    re-estimates them on 1,000 training images instead (cheap, and not in the paper).
    """
    if generations < 1:
        raise ConfigError(f"KE needs at least one generation, got {generations}")
    res = resolution or task.image_size
    ch = channels or task.in_channels
    gen = torch.Generator().manual_seed(derive_seed(seed, "masks", split_rate))
    masks = split_masks(model, mode, split_rate, in_channels=ch, resolution=res, generator=gen)
    out = []
    for g in range(1, generations + 1):
        if g > 1:
            reset_hypothesis(model, masks,
                             generator=torch.Generator().manual_seed(derive_seed(seed, "reset", split_rate, g)))
        train(model, task, cfg, device=device, resolution=res, channels=ch, seed=derive_seed(seed, "train", g))
        dense = evaluate(model, task, split, device=device, resolution=res, channels=ch, limit=limit)
        slim_model, slim = None, None
        if masks.mode == "kels":
            slim_model = extract_slim(model, masks)
            if recalibrate_slim:
                recalibrate_bn(slim_model, calibration_batches(task, min(1000, len(task.train)), 100, resolution=res,
                                                               channels=ch, seed=seed), device)
            slim = evaluate(slim_model, task, split, device=device, resolution=res, channels=ch, limit=limit)
        rec = Generation(g, dense, slim, copy.deepcopy(model).cpu() if keep_models else None, slim_model)
        if on_generation is not None:
            on_generation(rec)
        out.append(rec)
    return out


# -------------------------------------------------------------------------------------- evaluator


class KEEvaluator(Evaluator):
    """Build the family from scratch, evolve it for G generations; report every generation."""

    def __init__(self, task, space: KESpace, model_name: str, model_kw: dict, train_cfg: TrainConfig, *,
                 mode="kels", seed=0, device="cpu", resolution=None, latency=False, recalibrate_slim=False,
                 val_limit=None):
        self.task, self.space, self.model_name, self.model_kw = task, space, model_name, dict(model_kw)
        self.cfg, self.mode, self.seed, self.device, self.latency = train_cfg, mode, seed, device, latency
        self.resolution = resolution or task.image_size
        self.recalibrate_slim = bool(recalibrate_slim)
        self.val_limit = val_limit
        self.channels = task.in_channels
        self._costs: dict = {}

    def settings(self) -> dict:
        return {"space": self.space.describe(), "model": self.model_name, "model_kw": self.model_kw,
                "train": self.cfg.to_dict(), "mode": self.mode, "seed": self.seed, "resolution": self.resolution,
                "n_train": len(self.task.train), "latency": self.latency,
                "recalibrate_slim": self.recalibrate_slim, "val_limit": self.val_limit}

    def build(self):
        torch.manual_seed(derive_seed(self.seed, "init"))
        model = create_model(self.model_name, num_classes=self.task.num_classes, in_channels=self.channels,
                             **self.model_kw)
        model.natkit_input = {"resolution": self.resolution, "channels": self.channels}
        return model

    def costs(self, model) -> dict:
        key = str(getattr(model, "natkit_arch", None)) + str(sum(p.numel() for p in model.parameters()))
        if key not in self._costs:
            self._costs[key] = measure(model, self.resolution, self.channels, latency=self.latency,
                                       device=self.device)
        return self._costs[key]

    def _evaluate(self, encoding):
        plan = self.space.decode(encoding)
        s, G, e = plan["split_rate"], plan["generations"], plan["epochs"]
        cfg = scaled(TrainConfig(**{**self.cfg.to_dict(), "epochs": e}), len(self.task.train))
        model = self.build()
        gens = evolve(model, self.task, s, G, cfg, mode=self.mode, seed=derive_seed(self.seed, e),
                      device=self.device, resolution=self.resolution, channels=self.channels, keep_models=True,
                      recalibrate_slim=self.recalibrate_slim, limit=self.val_limit)
        records = []
        for rec in gens:
            dense_m = {"error": rec.dense["error"], **self.costs(rec.dense_model)}
            info = {"split_rate": s, "ke_generation": rec.generation, "epochs_per_generation": e,
                    "total_epochs": rec.generation * e, "mode": self.mode, "val_loss": rec.dense["loss"]}
            for m in (rec.dense_model, rec.slim_model):
                if m is not None:
                    m.natkit_input = {"resolution": self.resolution, "channels": self.channels}
            dense = (self.space.encode(s, rec.generation, e), dense_m, rec.dense_model.natkit_arch,
                     {**info, "variant": "dense"}, rec.dense_model)
            if rec.slim_model is not None:
                slim_m = {"error": rec.slim["error"], **self.costs(rec.slim_model)}
                slim = (self.space.encode(s, rec.generation, e), slim_m, rec.slim_model.natkit_arch,
                        {**info, "variant": "slim", "val_loss": rec.slim["loss"]}, rec.slim_model)
            else:  # WELS has no slim network: the candidate is the dense network
                slim = (dense[0], dense_m, dense[2], {**info, "variant": "dense"}, rec.dense_model)
            records.append((dense, slim))
        last_dense, last_slim = records[-1]
        # earlier generations and every dense network travel back to the problem, which archives them
        earlier = [r[1] for r in records[:-1]]
        dense_all = [r[0] for r in records] if self.mode == "kels" else []
        extra = {**last_slim[3], "_also": {"slim": earlier, "dense": dense_all}}
        return last_slim[1], last_slim[2], extra, last_slim[4]


class KEProblem(ArchiveProblem):
    """The core's archive problem, plus the per-generation records one KE evaluation produces."""

    def __init__(self, *args, dense_key: str, **kw):
        super().__init__(*args, **kw)
        self.dense_key = dense_key
        self.train_epochs = 0  # epochs of dense training spent by real evaluations (budget accounting)

    def _archive_result(self, encoding, res):
        also = res.extra.pop("_also", None) or {}
        if res.status == "ok":
            self.train_epochs += int(res.extra.get("total_epochs", 0))
        for key, records in ((self.eval_key, also.get("slim", [])), (self.dense_key, also.get("dense", []))):
            for enc, metrics, arch, extra, model in records:
                self.writer.write(enc, EvalResult(metrics, arch, "ok", "", extra, None, model), eval_key=key,
                                  generation=self.generation)
        # the writer returns the row if it was archived meanwhile, as an earlier generation of a longer run
        return super()._archive_result(encoding, res)


# ------------------------------------------------------------------------------------------- run


def _space_from(o: Options) -> KESpace:
    rates = [round(o.rate_min + i * o.rate_step, 6)
             for i in range(int(math.floor((o.rate_max - o.rate_min) / o.rate_step + 1e-9)) + 1)]
    return KESpace(rates, (1, o.max_generations), (o.epochs_min, o.epochs_max))


def _train_cfg(o: Options) -> TrainConfig:
    return TrainConfig(lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, optimizer=o.optimizer,
                       schedule=o.schedule, label_smoothing=o.label_smoothing, batch_size=o.batch_size,
                       max_batches=o.max_batches)


def build(ctx):
    """Space, evaluator and HV bounds of a KE run, as configured by ctx's options."""
    o = ctx.options
    space = _space_from(o)
    ev = KEEvaluator(ctx.task, space, o.model, {}, _train_cfg(o), mode=o.split, seed=ctx.seed,
                     device=ctx.device, resolution=o.resolution or ctx.task.image_size,
                     latency=ctx.wants_latency, recalibrate_slim=o.slim_bn == "recalibrate",
                     val_limit=o.val_limit)
    dense = ev.build()
    if o.split == "kels" and scaled_arch(dense.natkit_arch, 0.5) is None:
        ctx.log(f"{o.model}: no width arguments known; slim networks are the dense tree resized")
    _require_reachable_budget(ctx, ev, dense, space, o.split)
    return space, ev, ctx.bounds(ev.costs(dense))


def _require_reachable_budget(ctx, ev, dense, space, mode) -> None:
    """The smallest KE candidate is the slim network at the lowest split rate (kels), else the dense
    one; its counts are closed-form, so an unreachable budget stops the run before any training."""
    from natkit.core.feasibility import require_reachable

    sizes = [ev.costs(dense)]
    slim = scaled_arch(dense.natkit_arch, min(space.rates)) if mode == "kels" else None
    if slim is not None:
        sizes.append(ev.costs(build_from_arch(slim)))
    require_reachable(ctx.budget, {k: min(s[k] for s in sizes) for k in ("params", "macs")},
                      f"ke ({ev.model_name}, slim network at split rate {min(space.rates):g})")


def run(ctx) -> None:
    space, evaluator, bounds = build(ctx)
    settings = evaluator.settings()
    problem = KEProblem(space, evaluator, ctx.objectives, ctx.budget, ctx.archive, ctx.run_id, ctx.method,
                        ctx.eval_key(settings), runner=ctx.runner,
                        model_dir=ctx.model_dir if ctx.keep_models != "none" else None,
                        dense_key=ctx.eval_key({**settings, "variant": "dense"}), chance=ctx.chance, log=ctx.log)
    ctx.minimize(problem, bounds)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history), split=evaluator.mode,
                     model=evaluator.model_name, train_epochs=problem.train_epochs)
    finalize(ctx)


def slim_baseline(model_name: str, task, split_rate: float, cfg: TrainConfig, *, seed=0, device="cpu",
                  resolution=None, model_kw=None):
    """The slim network's architecture trained from scratch (the fair baseline for the slim network)."""
    res = resolution or task.image_size
    dense = create_model(model_name, num_classes=task.num_classes, in_channels=task.in_channels, **(model_kw or {}))
    arch = scaled_arch(dense.natkit_arch, split_rate)
    if arch is None:
        raise ConfigError(f"no width arguments known for {model_name}; cannot build its slim baseline")
    torch.manual_seed(derive_seed(seed, "init"))
    model = build_from_arch(arch)
    train(model, task, scaled(cfg, len(task.train)), device=device, resolution=res, channels=task.in_channels,
          seed=derive_seed(seed, "train"))
    return model
