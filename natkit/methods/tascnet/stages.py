"""TASCNet's two stages as natkit problems: the shared training setting, stage 1 (rebuild and
train the last k layers) and stage 2 (remove the most similar filters, fine-tune, repeat)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from natkit.core.evaluator import Evaluator
from natkit.core.space import SearchSpace
from natkit.train.schedule import scaled
from natkit.prune.surgery import remove_channels

from natkit.methods.tascnet.layers import (LayerSlot, decode_genome, describe, genome_bounds, rebuild,
                                           trainable_parameters, unfreeze)


# --------------------------------------------------------------------------------------------
# Shared plumbing: data, training budget, measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Setting:
    task: object
    resolution: int
    channels: int
    device: str = "cpu"
    lr: float = 0.05
    finetune_lr: float = 0.01
    batch_size: int = 64
    max_batches: int | None = None
    latency: bool = False

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(2, self.channels, self.resolution, self.resolution)

    def describe(self) -> dict:
        return {"resolution": self.resolution, "channels": self.channels, "lr": self.lr,
                "finetune_lr": self.finetune_lr, "batch_size": self.batch_size, "max_batches": self.max_batches,
                "n_train": len(self.task.train)}

    def fit(self, model, epochs, *, seed, lr=None, params=None, loss_hook=None, schedule="cosine"):
        from natkit.train import TrainConfig, train

        if epochs <= 0:
            return []
        cfg = scaled(TrainConfig(epochs=epochs, lr=lr or self.lr, batch_size=self.batch_size, schedule=schedule,
                                 max_batches=self.max_batches), len(self.task.train))
        return train(model, self.task, cfg, device=self.device, resolution=self.resolution,
                     channels=self.channels, params=params, seed=seed, loss_hook=loss_hook)

    def error(self, model, split="val") -> float:
        from natkit.train import evaluate

        return float(evaluate(model, self.task, split, device=self.device, resolution=self.resolution,
                              channels=self.channels)["error"])

    def measure(self, model) -> dict:
        from natkit.measure import count_latency_if

        model.cpu()
        return count_latency_if(model, self.resolution, self.channels, self.latency)


def _seed(seed, encoding) -> int:
    from natkit.utils.seed import derive_seed

    return derive_seed(int(seed), [int(v) for v in encoding])


def transfer_head(base: nn.Module, s: Setting, *, epochs: float, seed: int) -> nn.Module:
    """The source network with a new output layer for the target, trained alone on the frozen rest."""
    model = rebuild(base, [], s.example, s.task.num_classes, seed=seed)
    s.fit(model, epochs, seed=seed, params=trainable_parameters(model))
    return describe(model, base.natkit_arch, [], s.task.num_classes, s.resolution, s.channels)


# --------------------------------------------------------------------------------------------
# Stage 1: search the deeper layers
# --------------------------------------------------------------------------------------------


class Stage1Space(SearchSpace):
    """Per searched layer: width (if free), kernel size (conv), dropout (dense), as level indices.

    The archived encoding is ``[1, k, *levels]``: stage and k come first, so candidates of both
    stages and of every k live side by side in one archive.
    """

    def __init__(self, slots: list[LayerSlot], k: int):
        self.slots, self.k = slots, k
        self.xl, self.xu = genome_bounds(slots)

    def repair(self, x) -> list[int]:
        return [1, self.k, *super().repair(_strip_prefix(x, self.n_var))]

    def decode(self, encoding) -> dict:
        return {"stage": 1, "k": self.k, "layers": decode_genome(self.slots, _strip_prefix(encoding, self.n_var))}


def _strip_prefix(x, n_var):
    x = np.asarray(x).ravel()
    return x[len(x) - n_var:] if len(x) > n_var else x


class Stage1Evaluator(Evaluator):
    """Rebuild the planned layers on the frozen trunk, train them E epochs, measure."""

    def __init__(self, head_model: nn.Module, space: Stage1Space, setting: Setting, *, epochs: float,
                 seed: int, base_arch: dict):
        self.head_model, self.space, self.s = head_model, space, setting
        self.epochs, self.seed, self.base_arch = epochs, seed, base_arch

    def settings(self) -> dict:
        return {"stage": 1, "k": self.space.k, "epochs": self.epochs, **self.s.describe(), "base": self.base_arch,
                "source": getattr(self.head_model, "natkit_source", {}).get("path"), "seed": self.seed}

    def build(self, encoding) -> nn.Module:
        layers = self.space.decode(encoding)["layers"]
        model = rebuild(self.head_model, layers, self.s.example, self.s.task.num_classes,
                        seed=_seed(self.seed, encoding))
        return describe(model, self.base_arch, layers, self.s.task.num_classes, self.s.resolution, self.s.channels)

    def train_candidate(self, encoding) -> nn.Module:
        model = self.build(encoding)
        self.s.fit(model, self.epochs, seed=_seed(self.seed, encoding), params=trainable_parameters(model))
        return model

    def _evaluate(self, encoding):
        model = self.train_candidate(encoding)
        metrics = {"error": self.s.error(model), **self.s.measure(model)}
        return metrics, model.natkit_arch, {"stage": 1, "k": self.space.k}, unfreeze(model)


# --------------------------------------------------------------------------------------------
# Stage 2: compress redundant filters
# --------------------------------------------------------------------------------------------

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # of the disjoint pairs a layer may lose in one iteration
TOLERANCES = (1.0, 2.0, 3.0, 4.0)  # accuracy points below the best that still count as "kept"


class Stage2Space(SearchSpace):
    """Per prunable conv group: the share of its most similar pairs to remove each iteration; last
    gene: the accuracy tolerance. Encoding ``[2, *levels]``."""

    def __init__(self, group_names: list[str], tolerances=TOLERANCES, shares=SHARES):
        self.group_names, self.tolerances, self.shares = list(group_names), tuple(tolerances), tuple(shares)
        n = len(self.group_names)
        self.xl = np.zeros(n + 1, dtype=int)
        self.xu = np.array([len(self.shares) - 1] * n + [len(self.tolerances) - 1], dtype=int)

    def repair(self, x) -> list[int]:
        return [2, *super().repair(_strip_prefix(x, self.n_var))]

    def decode(self, encoding) -> dict:
        x = [int(v) for v in _strip_prefix(encoding, self.n_var)]
        return {"stage": 2, "shares": {n: self.shares[v] for n, v in zip(self.group_names, x[:-1])},
                "tolerance": self.tolerances[x[-1]]}

    def default(self, share=0.5, tolerance=2.0) -> list[int]:
        """The paper's setting as a genome: the same share everywhere and a 2-point tolerance."""
        s = int(np.argmin([abs(v - share) for v in self.shares]))
        t = int(np.argmin([abs(v - tolerance) for v in self.tolerances]))
        return [s] * len(self.group_names) + [t]


@dataclass
class Stage2Start:
    """The chosen stage-1 network after its recorded fine-tune: every stage-2 evaluation starts here."""

    model: nn.Module
    trajectories: dict  # group name -> (epochs, channels, features)
    best_acc: float
    metrics: dict


class Stage2Evaluator(Evaluator):
    """Iterate select-most-similar-pairs / remove / fine-tune while val accuracy stays within tolerance."""

    def __init__(self, start: Stage2Start, space: Stage2Space, setting: Setting, *, epochs: int,
                 max_iterations: int, min_channels: int, pull_weight: float = 0.0, pull_epochs: int = 1,
                 merge: bool = False, seed: int = 0, parent: dict | None = None, on_iteration=None,
                 final_epochs: float = 0):
        self.start, self.space, self.s = start, space, setting
        self.final_epochs = final_epochs
        self.epochs, self.max_iterations, self.min_channels = epochs, max_iterations, min_channels
        self.pull_weight, self.pull_epochs, self.merge = pull_weight, pull_epochs, merge
        self.seed, self.parent, self.on_iteration = seed, parent or {}, on_iteration

    def settings(self) -> dict:
        return {"stage": 2, "epochs": self.epochs, "max_iterations": self.max_iterations,
                "min_channels": self.min_channels, "pull_weight": self.pull_weight, "pull_epochs": self.pull_epochs,
                "final_epochs": self.final_epochs, "merge": self.merge, "seed": self.seed, "parent": self.parent,
                **self.s.describe()}

    def _evaluate(self, encoding):
        plan = self.space.decode(encoding)
        seed = _seed(self.seed, encoding)
        model = copy.deepcopy(self.start.model)
        trajs, best = dict(self.start.trajectories), self.start.best_acc
        kept, kept_metrics, kept_it = copy.deepcopy(model), dict(self.start.metrics), 0
        log, others = [], []
        for it in range(1, self.max_iterations + 1):
            removed = self._prune_once(model, trajs, plan["shares"], seed + it)
            if not removed:
                break
            trajs = finetune_recording(model, self.s, self.epochs, seed=seed + 100 * it)
            acc = 1.0 - self.s.error(model)
            metrics = {"error": 1.0 - acc, **self.s.measure(model)}
            ok = acc >= best - plan["tolerance"] / 100.0
            log.append({"iteration": it, "removed": removed, "val_acc": acc, "kept": ok, **metrics})
            if not ok:
                others.append((it, model, metrics, ok))
                break
            if kept_it:
                others.append((kept_it, kept, kept_metrics, True))
            best = max(best, acc)
            kept, kept_metrics, kept_it = copy.deepcopy(model), metrics, it
        if self.on_iteration is not None:
            # the intermediate networks are candidates too; the returned one is archived by the problem
            for it, net, metrics, ok in others:
                self.on_iteration(list(encoding), it, net, metrics, ok)
        extra = {"stage": 2, "iterations": kept_it, "log": log, "parent": self.parent.get("id")}
        if kept_it and self.final_epochs > 0:
            # the kept network's closing fine-tune (cosine from the fine-tuning lr), as after any pruning
            self.s.fit(kept, self.final_epochs, seed=seed + 7, lr=self.s.finetune_lr, schedule="cosine")
            extra["before_final"] = kept_metrics
            kept_metrics = {"error": self.s.error(kept), **self.s.measure(kept)}
            extra["final_epochs"] = self.final_epochs
        return kept_metrics, kept.natkit_arch, extra, kept

    def _prune_once(self, model, trajs, shares, seed) -> dict:
        from natkit.methods.tascnet.similarity import (conv_channel_groups, filters_to_remove, l1_over_epochs,
                                             merge_into_kept, most_similar_pairs, pull_together_loss,
                                             trajectory_similarity)

        groups = conv_channel_groups(model, self.s.example, min_channels=self.min_channels)
        chosen = []
        for g in groups:
            share, traj = shares.get(g.name, 0.0), trajs.get(g.name)
            if share <= 0 or traj is None or traj.shape[1] != g.n_channels:
                continue
            n = int(round(share * min(g.n_channels // 2, g.n_channels - self.min_channels)))
            pairs = most_similar_pairs(trajectory_similarity(traj), n)
            if pairs:
                chosen.append((g, pairs, l1_over_epochs(traj)))
        if not chosen:
            return {}
        if self.pull_weight > 0:
            gs, ps = [c[0] for c in chosen], [c[1] for c in chosen]
            self.s.fit(model, self.pull_epochs, seed=seed, lr=self.s.finetune_lr, schedule="constant",
                       loss_hook=lambda _m, _logits, _y: pull_together_loss(gs, ps, self.pull_weight))
        plan, removed = {}, {}
        for g, pairs, l1 in chosen:
            if self.merge:
                merge_into_kept(g, pairs, l1)
            plan[g.root] = filters_to_remove(pairs, l1)
            removed[g.name] = len(plan[g.root])
        remove_channels(model, plan, self.s.example)
        return removed


def finetune_recording(model: nn.Module, s: Setting, epochs: int, *, seed: int) -> dict:
    """Fine-tune every layer ``epochs`` epochs, snapshotting every conv group after each epoch."""
    from natkit.methods.tascnet.similarity import TrajectoryRecorder, conv_channel_groups

    unfreeze(model)
    recorder = TrajectoryRecorder(conv_channel_groups(model, s.example))
    for e in range(max(1, int(epochs))):
        s.fit(model, 1, seed=seed + e, lr=s.finetune_lr, schedule="constant")
        recorder.record()
    return {g.name: recorder.trajectory(i) for i, g in enumerate(recorder.groups)}


def knee(cands, objectives) -> object:
    """The front member nearest the ideal point once every objective is scaled to [0, 1]."""
    from natkit.core.archive import nondominated

    F = np.array([[float(c.metric(o)) for o in objectives] for c in cands], dtype=float)
    front = nondominated(F)
    Z = F[front]
    Z = (Z - Z.min(0)) / np.maximum(Z.max(0) - Z.min(0), 1e-12)
    return cands[front[int(np.argmin(np.linalg.norm(Z, axis=1)))]]
