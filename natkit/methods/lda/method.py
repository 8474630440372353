"""Task-dependent Deep LDA pruning (Tian, Arbel, Clark, CVIU 2021) as a natkit method.

1. A network pretrained on the source task (cached) gets a new decision layer for the target and is
   fine-tuned on it: the unpruned reference.
2. Pre-decision utility: Fisher ratio sigma_b^2 / sigma_w^2 of each pre-decision neuron on the
   target's train split (``natkit.methods.lda.utility``); the top M' neurons are kept, M' by validation
   sensitivity, Otsu's threshold, or a given share.
3. Cross-layer "deconv" tracing of the kept neurons gives every channel a utility; channels under
   t_i = eta * std(non-zero utilities of layer i) are removed physically (Torch-Pruning), the
   network is fine-tuned (``natkit.methods.lda.tracing``).
   Every layer keeps at least ``min_width`` of its unpruned width (and M' at least classes - 1 and
   ``min_width`` of the pre-decision width): see ``Pruner.set_reference`` for why.
4. Stage ``schedule`` (the paper's procedure): prune, fine-tune, raise eta by a step, repeat while
   the validation accuracy stays within ``tolerance`` of the unpruned network (a failing round gets
   ``recover_epochs`` more fine-tuning once before the loop stops); utilities and M' are recomputed
   on the current network every round.
   Stage ``search`` (``natkit.methods.lda.search``): NSGA-II/III (pymoo) over eta (shared or one per
   layer group) and the kept share M'; by default each candidate is the schedule stopped at its own
   eta (``search_mode``), objectives from the run (``error``, ``params``, ``macs``, optional ``robust_error``:
   mean error under Gaussian noise sigma and FGSM epsilon on the validation split).
Every candidate of both stages is archived with method ``lda`` and its stage.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from natkit.core.options import Options, option, parse_options
from natkit.errors import ConfigError
from natkit.train.schedule import scaled
from natkit.methods.lda.search import SEARCH_MODES, LDAEvaluator, LDASpace
from natkit.methods.lda import utility as LU
from natkit.methods.lda import tracing as TR
from natkit.methods.common import finalize, source_model, source_task

SELECT_RULES = ("validation", "otsu")


@dataclass
class LDAConfig(Options):
    """The options of ``natkit search lda`` (also settable in a space file's [space] table, family "lda")."""

    TOML_TABLES: ClassVar[dict] = {"space": ""}
    SPACE_FAMILY: ClassVar[str] = "lda"
    SEARCH_ONLY: ClassVar[tuple] = ("generations", "pop_size", "space")  # not part of an evaluation's key

    generations: int = option(10, quick=2, doc="pymoo generations of the eta/M' search")
    pop_size: int = option(20, quick=4, doc="population size of the eta/M' search")
    space: str | None = option(None, doc="a TOML FILE whose [space] table (family lda) sets these options")
    model: str = option("vgg_small", doc="source network")
    weights: str | None = option(None, doc="source weights file (safetensors / state dict) instead of pretraining")
    resolution: int = option(28, doc="input resolution")
    # quick source_epochs 3, not 1: one epoch of 2,000 images (16 steps) left vgg_small at 77.1% val error on
    # Fashion-MNIST, three reach 24.2%, within the minimum of natkit/train/source_quality.py
    source_epochs: float = option(2.0, quick=3.0, doc="source pretraining epochs (cached)")
    source_samples_per_class: int | None = option(2000, quick=200, doc="source images per class")
    transfer_epochs: float = option(8.0, quick=4.0, doc="fine-tuning of the transferred network on the target")
    finetune_epochs: float = option(6.0, quick=1.0, doc="fine-tuning after each pruning")
    lr: float = option(0.02, doc="learning rate")
    batch_size: int = option(64, doc="batch size")
    max_batches: int | None = option(None, doc="cap on batches per epoch")
    utility: str = option("diagonal", doc="Fisher utility", choices=LU.UTILITY_METHODS)
    select: str = option("validation", doc="how M' is chosen: validation | otsu | a share in (0, 1]")
    select_tolerance: float = option(0.0, doc="read-out accuracy we may give up when choosing M'")
    min_width: float = option(0.2, doc="share of its unpruned width every layer keeps")
    m_floor: int = option(-1, doc="smallest M'; -1: classes - 1")
    tolerance: float = option(0.01, doc="val accuracy the schedule may give up against the unpruned network")
    eta_start: float = option(0.8, quick=1.0, doc="first eta of the schedule")
    eta_step: float = option(0.25, doc="eta step (schedule and search grid)")
    schedule: bool = option(True, doc="run the paper's schedule stage")
    schedule_rounds: int = option(14, quick=1, doc="rounds of the schedule")
    recover_epochs: float = option(3.0, quick=0.0, doc="extra fine-tuning of a failing round")
    eta_levels: int = option(20, doc="search: eta in {0, eta_step, ..., eta_levels * eta_step}")
    shares: tuple[float, ...] = option((0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0), doc="kept shares M'")
    per_layer_eta: bool = option(False, doc="one eta per layer group instead of a shared one")
    search_mode: str = option("progressive", quick="oneshot", doc="how a search candidate is pruned",
                              choices=SEARCH_MODES)
    trace_images: int = option(512, quick=128, doc="images for tracing")
    sigma: float = option(0.2, doc="Gaussian noise of robust_error")
    epsilon: float = option(0.05, doc="FGSM epsilon of robust_error")
    robust_images: int = option(256, quick=64, doc="images for robust_error")

    def __post_init__(self):
        if isinstance(self.select, str) and self.select not in SELECT_RULES:
            try:
                self.select = float(self.select)
            except ValueError:
                pass
        self.shares = tuple(sorted(float(v) for v in self.shares))

    @classmethod
    def from_options(cls, options: dict, *, quick: bool = False) -> "LDAConfig":
        """The one options parser (``natkit.core.options``) applied to a dict of option values."""
        return parse_options(cls, options, method="lda", quick=quick)

    def check(self):
        if self.utility not in LU.UTILITY_METHODS:
            raise ConfigError(f"option utility={self.utility!r}: use one of {', '.join(LU.UTILITY_METHODS)}")
        if not isinstance(self.select, float) and self.select not in SELECT_RULES:
            raise ConfigError(f"option select={self.select!r}: use validation, otsu or a share in (0, 1]")
        if isinstance(self.select, float) and not 0 < self.select <= 1:
            raise ConfigError(f"option select={self.select!r}: a share must lie in (0, 1]")
        if self.eta_step <= 0 or self.eta_levels < 1 or self.schedule_rounds < 0:
            raise ConfigError("eta_step must be > 0, eta_levels >= 1, schedule_rounds >= 0")
        if not self.shares or any(not 0 < s <= 1 for s in self.shares):
            raise ConfigError(f"option shares={self.shares!r}: each share must lie in (0, 1]")
        if self.search_mode not in SEARCH_MODES:
            raise ConfigError(f"option search_mode={self.search_mode!r}: use one of {', '.join(SEARCH_MODES)}")
        if self.resolution < 8:
            raise ConfigError(f"option resolution={self.resolution}: at least 8 px")

    def train_cfg(self, epochs):
        from natkit.train import TrainConfig

        return TrainConfig(epochs=epochs, lr=self.lr, batch_size=self.batch_size, max_batches=self.max_batches)

    def to_dict(self) -> dict:
        d = {k: v for k, v in super().to_dict().items() if k not in self.SEARCH_ONLY}
        d["shares"] = list(self.shares)
        return d


# ------------------------------------------------------------------------------------------------
# The unpruned reference: source-pretrained, new decision layer, fine-tuned on the target
# ------------------------------------------------------------------------------------------------

def prepare_base(task, cfg: LDAConfig, *, source_task=None, seed=0, device="cpu", log=print, source_model=None):
    """(model, info): the source-pretrained network (or ``source_model``, e.g. the user's ``--weights``)
    transferred to ``task`` and fine-tuned on it."""
    from natkit.nets import create_model
    from natkit.train import evaluate, pretrained, train

    res, ch = cfg.resolution, task.in_channels
    info = {"model": cfg.model, "resolution": res}
    if source_task is not None:
        t0 = time.perf_counter()
        model = source_model if source_model is not None else pretrained(
            cfg.model, source_task, epochs=cfg.source_epochs, resolution=res, seed=seed, device=device, in_channels=ch)
        info["source"] = {"task": source_task.spec, "val_error": model.natkit_source.get("val_error"),
                          "path": model.natkit_source.get("path"), "seconds": round(time.perf_counter() - t0, 1)}
        if info["source"]["val_error"] is not None:
            log(f"source {source_task.spec}: val error {info['source']['val_error']:.4f}")
        # the new layer's init must not depend on whether the source came from the cache
        from natkit.utils.seed import derive_seed

        torch.manual_seed(derive_seed(seed, "decision layer"))
        replace_decision_layer(model, task.num_classes)
    else:
        model = create_model(cfg.model, num_classes=task.num_classes, in_channels=ch)
    model.natkit_input = {"resolution": res, "channels": ch}
    t0 = time.perf_counter()
    train(model, task, scaled(cfg.train_cfg(cfg.transfer_epochs), len(task.train)), device=device, resolution=res,
          channels=ch, seed=seed)
    model.cpu().eval()
    info["transfer_seconds"] = round(time.perf_counter() - t0, 1)
    info["val_error"] = evaluate(model, task, "val", resolution=res, channels=ch)["error"]
    log(f"unpruned {cfg.model} on {task.spec}: val error {info['val_error']:.4f}")
    return model, info


def replace_decision_layer(model: nn.Module, num_classes: int) -> None:
    """A fresh decision layer for the target classes (the source's does not transfer)."""
    name = TR.decision_layer(model)
    old = dict(model.named_modules())[name]
    model.set_submodule(name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    arch = copy.deepcopy(getattr(model, "natkit_arch", None))
    if arch is not None:
        arch["kwargs"]["num_classes"] = num_classes
        model.natkit_arch = arch


def refresh_arch(model: nn.Module) -> None:
    """Describe a pruned VGG by its widths; other families rely on ``load_model`` resizing layers."""
    from natkit.nets.vgg import VGG

    arch = copy.deepcopy(getattr(model, "natkit_arch", None))
    if arch is None or not isinstance(model, VGG):
        return
    cfg = ["M" if isinstance(m, nn.MaxPool2d) else m.out_channels for m in model.features
           if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    hidden = [m.out_features for m in model.classifier if isinstance(m, nn.Linear)][:-1]
    arch["kwargs"].update(cfg=cfg, hidden=hidden)
    model.natkit_arch = arch


def remove_channels(model: nn.Module, plan: dict, example_input: torch.Tensor) -> nn.Module:
    """Physical removal through the core's Torch-Pruning surgery."""
    from natkit.prune.surgery import remove_channels as surgery_remove

    return surgery_remove(model, plan, example_input)


# ------------------------------------------------------------------------------------------------
# One pruning step
# ------------------------------------------------------------------------------------------------

class Pruner:
    """Everything one pruning step needs about the task: batches, activations, the M' rule."""

    def __init__(self, task, cfg: LDAConfig, *, seed=0, device="cpu"):
        self.task, self.cfg, self.seed, self.device = task, cfg, seed, device
        self.res, self.ch = cfg.resolution, task.in_channels
        self.trace_batches = list(task.batches("train", 128, resolution=self.res, channels=self.ch, shuffle=True,
                                               seed=seed, limit=cfg.trace_images))
        self.example = self.trace_batches[0][0][:1].clone()
        self.floors: dict = {}
        self.pre_floor = 1

    def set_reference(self, base) -> None:
        """Width floors from the unpruned network: ``min_width`` of each group's channels.

        The threshold t_i = eta * std is scale-free per layer, so the share it removes depends only
        on the shape of the layer's utility distribution. Back-projected utilities are sparse in the
        early layers (many rectifications deep) and flat in the last conv layers, so a shared eta
        empties the cheap early layers long before it touches the expensive late ones; the floor
        stops that, and the late layers are pruned as eta keeps rising.
        """
        groups = TR.channel_groups(copy.deepcopy(base), self.example)
        self.floors = {g.root: max(1, int(np.ceil(self.cfg.min_width * g.size))) for g in groups}
        # the pre-decision layer obeys the same floor through M'
        X, _ = TR.predecision_activations(base, self.trace_batches[:1])
        self.pre_floor = max(1, int(np.ceil(self.cfg.min_width * X.shape[1])))

    def activations(self, model, split):
        return TR.predecision_activations(model, self.task.batches(split, 256, resolution=self.res,
                                                                   channels=self.ch))

    def utility(self, model):
        X, y = self.activations(model, "train")
        return LU.top_layer_utility(X, y, self.cfg.utility), X, y

    def m_floor(self, d: int) -> int:
        floor = self.task.num_classes - 1 if self.cfg.m_floor < 0 else self.cfg.m_floor
        return int(min(max(floor, self.pre_floor, 1), d))

    def choose_m(self, model, u, X, y, select=None) -> tuple[int, dict]:
        """M' by the configured rule, never below classes - 1 (LDA's own subspace has that many
        directions; ``m_floor`` overrides) nor below ``min_width`` of the unpruned pre-decision width:
        on a small validation split the read-out saturates with a handful of neurons, and a network
        cut to that few generalises worse (digits: ~1 point of test accuracy at 9 vs 26 neurons)."""
        select = self.cfg.select if select is None else select
        floor = self.m_floor(len(u))
        if isinstance(select, float):
            return max(floor, LU.share_to_count(select, len(u))), {"rule": "share", "share": select}
        if select == "otsu":
            return max(floor, LU.select_by_otsu(u)), {"rule": "otsu"}
        Xv, yv = self.activations(model, "val")
        counts = sorted({c for c in np.unique(np.round(np.geomspace(1, len(u), num=12))).astype(int)
                         if c >= floor} | {floor, len(u)})
        s = LU.select_by_validation(X, y, Xv, yv, u, tolerance=self.cfg.select_tolerance, counts=counts,
                                    seed=self.seed)
        return s.m, {"rule": "validation", "counts": list(s.counts),
                     "val_accuracy": [round(a, 4) for a in s.val_accuracy]}

    def prune(self, model, keep, eta) -> tuple[nn.Module, dict]:
        """A pruned copy of ``model`` (not fine-tuned) and what was removed per group root."""
        model = copy.deepcopy(model).cpu().eval()
        result = TR.trace(model, self.trace_batches, keep)
        groups = TR.channel_groups(model, self.example)
        eta_arr = np.broadcast_to(np.asarray(eta, dtype=float), (len(groups),))
        plan = TR.pruning_plan(model, result, groups, keep, eta_arr, min_channels=self.floors or 1)
        removed = TR.describe_plan(model, plan)
        if plan:
            remove_channels(model, plan, self.example)
        refresh_arch(model)
        return model, removed

    def finetune(self, model, epochs, seed):
        from natkit.train import train

        if epochs > 0:
            train(model, self.task, scaled(self.cfg.train_cfg(epochs), len(self.task.train)), device=self.device,
                  resolution=self.res,
                  channels=self.ch, seed=seed)
        return model.cpu().eval()

    def metrics(self, model, robust: bool, latency: bool = False) -> dict:
        from natkit.measure import count_latency_if
        from natkit.train import evaluate

        m = {"error": evaluate(model, self.task, "val", resolution=self.res, channels=self.ch)["error"],
             **count_latency_if(model, self.res, self.ch, latency)}
        if robust:
            from natkit.methods.lda.robust import robust_error

            m["robust_error"] = robust_error(model, self.task, sigma=self.cfg.sigma, epsilon=self.cfg.epsilon,
                                             resolution=self.res, channels=self.ch, seed=self.seed,
                                             limit=self.cfg.robust_images)
        return m

    def n_groups(self, model) -> int:
        return len(TR.channel_groups(copy.deepcopy(model), self.example))


@dataclass(frozen=True)
class Round:
    index: int
    eta: float
    m_prime: int
    removed: dict
    metrics: dict
    accepted: bool
    model: object
    epochs: float = 0.0  # fine-tuning epochs this round (recovery included)
    chunks: tuple = ()  # ((epochs, seed), ...): each fine-tuning call of this round, so baselines can replay it


def schedule(base, pruner: Pruner, *, base_error: float, rounds: int, tolerance: float, eta_start: float,
             eta_step: float, seed=0, until_removed: float | None = None, on_round=None, log=print,
             eta_max: float = 20.0):
    """The paper's loop: prune with eta, fine-tune, raise eta while val accuracy holds.

    Returns every round. Rounds after the first failure are run only when ``until_removed`` asks
    for deeper compression (benchmarks compare at fixed levels); they are marked not accepted. With
    ``until_removed`` the loop also ends once that share of the parameters is gone.
    """
    from natkit.measure import count_params

    p0 = count_params(base)
    if not pruner.floors:
        pruner.set_reference(base)
    current, out, failed = base, [], False
    eta, k = eta_start, -1
    # ``rounds`` counts rounds that removed something; an eta that removes nothing costs no training
    while len(out) < rounds and eta <= eta_max:
        k += 1
        u, X, y = pruner.utility(current)
        m, _ = pruner.choose_m(current, u, X, y)
        keep = LU.keep_top(u, m)
        cand, removed = pruner.prune(current, keep, eta)
        if not removed:
            eta += eta_step
            continue
        chunks = [(pruner.cfg.finetune_epochs, seed + 1 + k)]
        pruner.finetune(cand, *chunks[-1])
        metrics = pruner.metrics(cand, robust=False)
        if metrics["error"] > base_error + tolerance and pruner.cfg.recover_epochs > 0 and not failed:
            chunks.append((pruner.cfg.recover_epochs, seed + 1001 + k))
            pruner.finetune(cand, *chunks[-1])
            metrics = pruner.metrics(cand, robust=False)
        ok = (not failed) and metrics["error"] <= base_error + tolerance
        r = Round(k, round(eta, 6), m, removed, metrics, ok, cand, sum(e for e, _ in chunks), tuple(chunks))
        out.append(r)
        if on_round:
            on_round(r)
        log(f"round {k}: eta {eta:.2f} M'={m} params {metrics['params']} ({1 - metrics['params'] / p0:.1%} removed)"
            f" val error {metrics['error']:.4f} {'ok' if ok else 'below target'}")
        failed = failed or not ok
        deep_enough = until_removed is not None and 1 - metrics["params"] / p0 >= until_removed
        if deep_enough or (failed and until_removed is None):
            break
        current = cand
        eta += eta_step
    return out


# ------------------------------------------------------------------------------------------------
# The multi-objective problem
# ------------------------------------------------------------------------------------------------

# ------------------------------------------------------------------------------------------------
# run(ctx)
# ------------------------------------------------------------------------------------------------

def run(ctx) -> None:
    from natkit.measure import measure

    cfg = ctx.options
    from natkit.methods.lda.smallest import require_reachable_budget

    require_reachable_budget(ctx)  # an unreachable params/MACs budget stops here, before any training
    torch.manual_seed(ctx.seed)
    source = src_model = None
    if cfg.weights:  # the user's source network instead of natkit's pretraining
        source = source_task(ctx, samples_per_class=cfg.source_samples_per_class)
        src_model = source_model(ctx, cfg.model, source=source, in_channels=ctx.task.in_channels)
    elif ctx.source_spec and ctx.source_spec != ctx.task.spec:
        source = source_task(ctx, samples_per_class=cfg.source_samples_per_class)
    base, info = prepare_base(ctx.task, cfg, source_task=source, seed=ctx.seed, device=ctx.device, log=ctx.log,
                              source_model=src_model)
    if source is not None and info.get("source", {}).get("val_error") is not None:
        from natkit.train.source_quality import check_source

        check_source(source, info["source"]["val_error"], log=ctx.log, stats=ctx.stats)
    pruner = Pruner(ctx.task, cfg, seed=ctx.seed, device=ctx.device)
    robust = "robust_error" in ctx.objectives
    latency = ctx.wants_latency
    ctx.stats.update(lda_config=cfg.to_dict(), base=info)

    ref_key = ctx.eval_key({"cfg": cfg.to_dict(), "stage": "unpruned", "seed": ctx.seed})
    # measured under this process's claim, and only if no process has archived it yet
    ref = ctx.writer.side_row(["unpruned"], eval_key=ref_key, metrics=lambda: pruner.metrics(base, robust, latency),
                              model=base, extra={"stage": "unpruned"})
    ctx.stats["base_metrics"] = ref.measured()

    if cfg.schedule and cfg.schedule_rounds > 0:
        sched_key = ctx.eval_key({"cfg": cfg.to_dict(), "stage": "schedule", "seed": ctx.seed})

        def archive_round(r: Round):
            def metrics():  # called under this process's claim, only if the row is not archived yet
                return pruner.metrics(r.model, robust, latency) if robust or latency else dict(r.metrics)

            ctx.writer.side_row(["schedule", r.index], eval_key=sched_key, metrics=metrics, model=r.model,
                                generation=r.index, extra={"stage": "schedule", "eta": r.eta, "m_prime": r.m_prime,
                                                           "removed": r.removed, "accepted": r.accepted})

        rounds = schedule(base, pruner, base_error=info["val_error"], rounds=cfg.schedule_rounds,
                          tolerance=cfg.tolerance, eta_start=cfg.eta_start, eta_step=cfg.eta_step, seed=ctx.seed,
                          on_round=archive_round, log=ctx.log)
        ctx.stats["schedule"] = [{"round": r.index, "eta": r.eta, "m_prime": r.m_prime, "accepted": r.accepted,
                                  **r.metrics} for r in rounds]

    space = LDASpace(pruner.n_groups(base), cfg)
    evaluator = LDAEvaluator(base, pruner, space, seed=ctx.seed, robust=robust, latency=latency,
                             mode=cfg.search_mode)
    maxima = measure(base, cfg.resolution, ctx.task.in_channels, latency=latency)
    bounds = ctx.bounds(maxima)
    problem = ctx.problem(space, evaluator)
    ctx.minimize(problem, bounds)
    ctx.stats.update(real_evaluations=problem.n_real, evaluated=len(problem.history))
    finalize(ctx)


Options = LDAConfig
