"""TASCNet (Tula et al., 2022): target-aware search of the deeper layers, then filter compression.

Stage 1 (after AutoTune): the last k "meaningful" layers of a source-pretrained network, counted
from the output (conv and dense layers only; the output layer itself is always rebuilt for the
target classes and does not count towards k), are rebuilt with fresh He-normal weights and the
widths, kernel sizes and dropout rates of the decision vector, on top of the frozen pretrained
trunk, and trained E epochs on the target. k is fixed, or grows from 1 while the best validation
accuracy still improves (AutoTune's rule). The original searches with single-objective Bayesian
optimisation; here NSGA-II returns a front over (error, params, macs).

Stage 2: a chosen stage-1 network (the knee by default) is fine-tuned while its conv weights are
recorded every epoch; in every conv layer with more than a threshold of filters the most similar
filter pairs (cosine similarity of weight trajectories) are found, the smaller-L1 filter of each
pair is removed physically (Torch-Pruning through ``natkit.prune.surgery``), the network is
fine-tuned again, and this repeats while validation accuracy stays within a tolerance of the best.
The per-layer share of pairs to remove and the tolerance are the decision vector of a second
pymoo problem. Every candidate of both stages is archived with method ``tascnet`` and its stage.

Choices where the paper or the issue is silent:
- Residual joins: a layer whose output width is tied (Torch-Pruning's dependency graph) to a layer
  of the frozen trunk keeps its width (only its kernel is searched); widths tied only to other
  rebuilt layers share one gene. Strided convs keep their kernel size so residual partners agree.
- The trunk's batch norms keep their pretrained statistics during stage 1 (frozen, as in Keras).
- Stage 2 fine-tunes every layer (the paper compresses "the fine-tuned CNN"), one ``train`` call
  per epoch at a constant learning rate so the weights can be snapshotted between epochs.
- Similarity of two filters = cosine of their weight vectors averaged over the recorded epochs;
  pairs are disjoint (greedy from the most similar down); at most ``share * min(C // 2, C - t)``
  pairs per layer and iteration, so a layer never drops below the threshold ``t``.
- The network an evaluation keeps gets a closing fine-tune of ``s2_final_epochs`` (cosine from the
  fine-tuning lr) before it is measured and archived; the tolerance test uses the accuracy before it.
  Without it the last cut is followed by only ``s2_epochs`` at a constant lr.
- Knee = the stage-1 front member nearest the ideal point after scaling each objective to [0, 1].
- Archived encodings: ``[1, k, *genes]`` (stage 1), ``[2, *genes]`` (stage 2); the head-only
  transfer, the stage-2 start network and intermediate stage-2 iterations are archived as well
  (encodings ``[1, 0]`` and ``{"stage": 2, ...}`` dicts).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch.nn as nn

from natkit.core.options import Options as BaseOptions, option
from natkit.errors import ConfigError, NatkitError
from natkit.methods.common import finalize, source_task
from natkit.methods.tascnet.layers import (KERNEL_DOMAINS, decode_genome, genome_bounds, layer_slots,
                                           meaningful_layers, rebuild, unfreeze)
from natkit.methods.tascnet.stages import (Setting, Stage1Evaluator, Stage1Space, Stage2Evaluator, Stage2Space,
                                           Stage2Start, finetune_recording, knee, transfer_head)


# --------------------------------------------------------------------------------------------
# The method: natkit search tascnet
# --------------------------------------------------------------------------------------------


@dataclass
class Options(BaseOptions):
    """The options of ``natkit search tascnet``."""

    WHY_NOT: ClassVar[dict] = {"space": "its stage-1 space is built from the source network's deeper layers "
                                        "(options k, k_max, kernels) and stage 2's from its conv layers"}

    generations: int = option(10, quick=2, doc="NSGA-II generations of stage 1 (and of stage 2 unless s2_generations)")
    pop_size: int = option(20, quick=4, doc="population of stage 1 (and of stage 2 unless s2_pop_size)")
    model: str = option("vgg_small", doc="source network")
    weights: str | None = option(None, doc="source weights file (safetensors / state dict) instead of pretraining")
    resolution: int | None = option(None, doc="input resolution (default: the source task's image size)")
    pretrain_epochs: float = option(3.0, quick=3.0, doc="source pretraining epochs (cached)")
    pretrain_samples: int | None = option(1000, quick=500, doc="source images per class")
    source_val_fraction: float | None = option(None, quick=0.05, doc="share of the source train split held out "
                                               "for validation (default: the loader's)")
    head_epochs: float = option(2.0, quick=2.0, doc="training of the new head (head-only transfer)")
    k: str = option("auto", quick="1", doc="rebuilt deeper layers: an int, or auto (grow while val accuracy improves)")
    k_max: int = option(4, doc="largest k under auto")
    kernels: str = option("1,3,5", doc="kernel-size domain of rebuilt conv layers", choices=tuple(KERNEL_DOMAINS))
    epochs: float = option(3.0, quick=2.0, doc="E: stage-1 training of each candidate")
    lr: float = option(0.05, doc="stage-1 learning rate")
    finetune_lr: float = option(0.01, doc="stage-2 fine-tuning learning rate")
    batch_size: int = option(64, doc="batch size")
    max_batches: int | None = option(None, quick=100, doc="cap on batches per epoch")
    choose: str = option("knee", doc="stage-2 parent: knee | best | a candidate id")
    s2_epochs: int = option(2, quick=2, doc="fine-tuning epochs per stage-2 iteration (trajectory length)")
    s2_iterations: int = option(4, quick=2, doc="stage-2 prune/fine-tune iterations")
    s2_final_epochs: float = option(2.0, quick=1.0, doc="closing fine-tune (cosine) of the kept network")
    s2_generations: int | None = option(None, quick=1, doc="stage-2 generations (default: generations)")
    s2_pop_size: int | None = option(None, quick=3, doc="stage-2 population (default: pop_size)")
    min_filters: int | None = option(None, doc="layers with at most this many filters are left alone")
    pull_weight: float = option(0.0, doc="lambda of CE + lambda * exp(-sum cos)")
    merge: bool = option(False, doc="merge similar filters instead of removing one")

    def check(self) -> None:
        if self.k != "auto" and (not self.k.isdigit() or int(self.k) < 1):
            raise ConfigError(f"option k={self.k!r}: use a positive integer or 'auto'")

    @classmethod
    def from_ctx(cls, ctx) -> "Options":
        """The run's parsed options (kept for scripts written before ``natkit.run_search``)."""
        return ctx.options


def run(ctx) -> None:
    import time

    t0 = time.perf_counter()
    o = ctx.options

    def load_source():  # quick: a smaller source validation split (pretraining reports its error on all of it)
        return source_task(ctx, samples_per_class=o.pretrain_samples,
                           **({"val_fraction": o.source_val_fraction} if o.source_val_fraction else {}))

    from natkit.methods.tascnet.smallest import require_reachable_budget

    require_reachable_budget(ctx, load_source)  # an unreachable params/MACs budget stops here, before training
    source = load_source()
    resolution = o.resolution or max(source.image_size, 8)
    channels = source.in_channels
    ctx.log(f"source {source.spec} ({len(source.train)} train images) -> target {ctx.task.spec}, "
            f"{o.model} at {resolution}px")
    base = _source_model(o, source, resolution, channels, ctx)
    from natkit.train.source_quality import check_source

    check_source(source, getattr(base, "natkit_source", {}).get("val_error"), log=ctx.log, stats=ctx.stats)
    s = Setting(ctx.task, resolution, channels, ctx.device, o.lr, o.finetune_lr, o.batch_size, o.max_batches,
                latency=ctx.wants_latency)
    head = transfer_head(base, s, epochs=o.head_epochs, seed=ctx.seed)
    head.natkit_source = getattr(base, "natkit_source", {})
    head.cpu()  # where measuring leaves it, whether or not this process measures it (below)
    head_row = _record(ctx, ctx.eval_key({"stage": 1, "k": 0, **s.describe(), "seed": ctx.seed}), [1, 0],
                       unfreeze(copy.deepcopy(head)), generation=0,
                       metrics=lambda: {"error": s.error(head), **s.measure(head)},
                       extra={"stage": 1, "k": 0, "note": "new head only"})
    head_metrics = head_row.measured()
    ctx.log(f"head-only transfer: val error {head_metrics['error']:.4f}")

    n_layers = len(meaningful_layers(head, s.example)) - 1
    ks = [min(int(o.k), n_layers)] if o.k != "auto" else list(range(1, min(o.k_max, n_layers) + 1))
    bounds = ctx.bounds(_maxima(head, s, max(ks), o))
    evaluators, problems, best_prev = {}, [], 1.0 - head_metrics["error"]
    for k in ks:
        slots = layer_slots(head, s.example, k, kernels=KERNEL_DOMAINS[o.kernels])
        space = Stage1Space(slots, k)
        ev = Stage1Evaluator(head, space, s, epochs=o.epochs, seed=ctx.seed, base_arch=base.natkit_arch)
        evaluators[k] = ev
        problem = ctx.problem(space, ev)
        problems.append(problem)
        ctx.minimize(problem, bounds, algorithm=nsga2(o.pop_size))
        accs = [1.0 - m["error"] for _, m, st in problem.history if st == "ok"]
        best_k = max(accs, default=0.0)
        ctx.log(f"stage 1, k={k}: {problem.n_real} trained, best val accuracy {best_k:.4f}")
        ctx.stats.setdefault("stage1", []).append({"k": k, "evaluated": len(problem.history),
                                                   "real": problem.n_real, "best_val_acc": best_k})
        if o.k == "auto" and best_k <= best_prev:
            break  # AutoTune: stop growing k once the best accuracy no longer improves
        best_prev = max(best_prev, best_k)

    stage1 = _stage1_rows(ctx.archive, head_row.id, problems)
    if not stage1 and ctx.budget.n_constr:
        raise NatkitError(f"no candidate met the budget ({ctx.budget.describe()}) in stage 1, so there is nothing "
                          f"to compress; every evaluation is archived as infeasible in {ctx.archive.path}")
    parent = _choose(stage1, o.choose, ctx.objectives, ctx.archive)
    ctx.log(f"stage 2 starts from candidate {parent.id} (k={parent.extra.get('k')}, val error {parent.error:.4f})")
    model = _parent_model(ctx, parent, evaluators, head)
    t1 = time.perf_counter()
    _stage2(ctx, o, s, model, parent, bounds)
    t2 = time.perf_counter()
    front = finalize(ctx)
    ctx.stats["seconds"] = {"source_and_stage1": round(t1 - t0, 1), "stage2": round(t2 - t1, 1),
                            "finalize": round(time.perf_counter() - t2, 1)}
    ctx.stats["front"] = [{"id": c.id, "stage": c.extra.get("stage"), "error": c.error, "test_error": c.test_error,
                           "params": c.params, "macs": c.macs} for c in front]


def _stage1_rows(archive, head_id: int, problems) -> list:
    """The successful stage-1 rows of this run: the head-only transfer and every candidate its problems
    evaluated or read back, whichever run stored them (on a shared archive another process may have
    evaluated some under its own run id), in archive order."""
    found = [archive.get(head_id)] + [archive.lookup(p.eval_key, enc) for p in problems for enc, _, _ in p.history]
    rows = {c.id: c for c in found if c is not None and c.status == "ok"}
    return [rows[i] for i in sorted(rows)]


def _record(ctx, eval_key: str, encoding, model, *, generation: int, metrics, extra: dict):
    """Archive a row the pymoo problem does not own (head-only transfer, stage 2's unpruned start and
    its iterations) through the run's writer: a resumed run reads it back, the budget applies.
    ``metrics`` as a callable is measured only under this process's claim, when no process has archived
    the row yet. Returns the writer's ``Row``."""
    return ctx.writer.side_row(encoding, eval_key=eval_key, metrics=metrics, model=model, extra=extra,
                               generation=generation)


def nsga2(pop_size: int, sampling=None):
    """NSGA-II for any number of objectives (the issue asks for NSGA-II in both stages): the core's
    factory with its integer operators, asked for the two-objective algorithm."""
    from natkit.core.search import nsga

    return nsga(2, pop_size, sampling=sampling)


def _source_model(o, source, resolution, channels, ctx) -> nn.Module:
    """The pretrained source network: natkit's cached pretraining, or the user's weights file."""
    from natkit.train import pretrained

    if not o.weights:
        return pretrained(o.model, source, epochs=o.pretrain_epochs, resolution=resolution, seed=ctx.seed,
                          device=ctx.device, in_channels=channels)
    from natkit.nets import create_model
    from natkit.nets.io import load_state_dict_file, resize_to_state_dict

    state = load_state_dict_file(o.weights)
    model = create_model(o.model, num_classes=source.num_classes, in_channels=channels)
    resize_to_state_dict(model, state)  # e.g. a 1000-class head; it is replaced for the target anyway
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"weights {o.weights} do not fit {o.model}: {str(exc).splitlines()[0]}") from None
    model.natkit_source = {"path": str(o.weights)}
    return model


def _maxima(head, s, k, o) -> dict:
    """Objective bounds for hypervolume: the larger of the source net and the widest stage-1 candidate."""
    slots = layer_slots(head, s.example, k, kernels=KERNEL_DOMAINS[o.kernels])
    widest = rebuild(head, decode_genome(slots, genome_bounds(slots)[1]), s.example, s.task.num_classes)
    a, b = s.measure(head), s.measure(widest)
    return {key: max(a[key], b[key]) for key in a}


def _choose(cands, how, objectives, archive):
    if not cands:
        raise ConfigError("stage 1 produced no successful candidate to compress")
    if how == "knee":
        return knee(cands, objectives)
    if how == "best":
        return min(cands, key=lambda c: (c.error, c.macs))
    if not str(how).isdigit():
        raise ConfigError(f"option choose={how!r}: use knee, best or a candidate id")
    c = archive.get(int(how))
    if c.method != "tascnet" or c.extra.get("stage") != 1 or c.status != "ok":
        raise ConfigError(f"candidate {how} is not a successful TASCNet stage-1 candidate")
    return c


def _parent_model(ctx, parent, evaluators, head) -> nn.Module:
    """The chosen stage-1 network with its trained weights: from the run's model store, else retrained
    with the candidate's own seed (training is deterministic per encoding)."""
    from natkit.nets.io import load_model

    d = ctx.model_dir / str(parent.id)
    if (d / "arch.json").is_file():
        return unfreeze(load_model(d))
    k = parent.extra.get("k", 0)
    if k == 0:
        return unfreeze(copy.deepcopy(head))
    ev = evaluators.get(k)
    if ev is None:
        raise ConfigError(f"cannot restore candidate {parent.id}: no stored weights and k={k} was not searched")
    return unfreeze(ev.train_candidate(parent.encoding))


def _stage2(ctx, o, s, model, parent, bounds) -> None:
    from natkit.methods.tascnet.similarity import conv_channel_groups

    widest = max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=0)
    min_channels = o.min_filters if o.min_filters is not None else max(2, int(round(64 * widest / 512)))
    parent_acc = 1.0 - parent.error
    trajs = finetune_recording(model, s, o.s2_epochs, seed=ctx.seed)
    settings0 = {"stage": 2, "parent": parent.id, "s2_epochs": o.s2_epochs, **s.describe(), "seed": ctx.seed}
    model.cpu()  # where measuring leaves it, whether or not this process measures it (below)
    start_metrics = _record(ctx, ctx.eval_key(settings0), {"stage": 2, "iteration": 0}, model, generation=0,
                            metrics=lambda: {"error": s.error(model), **s.measure(model)},
                            extra={"stage": 2, "iterations": 0, "parent": parent.id,
                                   "note": "fine-tuned, unpruned"}).measured()
    start = Stage2Start(model, trajs, max(parent_acc, 1.0 - start_metrics["error"]), start_metrics)
    names = [g.name for g in conv_channel_groups(model, s.example, min_channels=min_channels)]
    if not names:
        ctx.log(f"stage 2: no conv layer has more than {min_channels} filters; nothing to compress")
        return
    space = Stage2Space(names)
    holder = {}

    def on_iteration(encoding, it, net, metrics, kept):
        problem = holder["problem"]
        _record(ctx, problem.eval_key + "-iter", {"stage": 2, "x": encoding, "iteration": it}, net,
                generation=problem.generation, metrics=metrics,
                extra={"stage": 2, "iteration": it, "within_tolerance": kept, "parent": parent.id})

    ev = Stage2Evaluator(start, space, s, epochs=o.s2_epochs, max_iterations=o.s2_iterations,
                         min_channels=min_channels, pull_weight=o.pull_weight, merge=o.merge, seed=ctx.seed,
                         final_epochs=o.s2_final_epochs,
                         parent={"id": parent.id, "encoding": parent.encoding}, on_iteration=on_iteration)
    problem = ctx.problem(space, ev)
    holder["problem"] = problem
    pop = o.s2_pop_size or o.pop_size
    rng = np.random.default_rng(ctx.seed)
    # the paper's own setting (same share everywhere, 2-point tolerance) seeds the population
    X = np.vstack([space.default(), rng.integers(space.xl, space.xu + 1, size=(pop - 1, space.n_var))])
    algorithm = nsga2(pop, sampling=X)
    ctx.minimize(problem, bounds, algorithm=algorithm, generations=o.s2_generations or o.generations)
    ctx.stats["stage2"] = {"parent": parent.id, "groups": names, "min_filters": min_channels,
                           "evaluated": len(problem.history), "real": problem.n_real}
