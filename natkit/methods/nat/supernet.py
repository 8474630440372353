"""Training the NAT supernet: source pretraining (sandwich rule + in-place distillation, cached on
disk) and target adaptation (subnets sampled from per-gene distributions), plus the in-place
weight-sharing evaluator that scores a genome without copying weights.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.core.evaluator import Evaluator
from natkit.methods.nat.space import NATSpace, count_params_macs
from natkit.methods.nat.ofa_mbv3 import MBV3Config, OFAMobileNetV3
from natkit.train.bn import recalibrate_bn
from natkit.train.loop import distillation_loss, evaluate, step_bar
from natkit.utils.seed import derive_seed, seed_everything


# ----------------------------------------------------------------------------------------------
# one training step over several subnets


def _resize(x, r):
    return x if x.shape[-1] == r else F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)


def multi_subnet_step(net: OFAMobileNetV3, space: NATSpace, opt, x, y, genomes, *, distill: float,
                      label_smoothing: float = 0.0) -> float:
    """Sandwich-style step: ``genomes[0]`` is the teacher (cross-entropy on labels), the others learn
    from its soft outputs (in-place distillation) mixed with the labels; gradients accumulate, one
    optimiser step."""
    opt.zero_grad(set_to_none=True)
    teacher, total = None, 0.0
    for i, g in enumerate(genomes):
        arch = space.decode(g)
        net.set_active(arch)
        logits = net(_resize(x, arch["resolution"]))
        ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if i == 0:
            loss = ce
            teacher = logits.detach()
        else:
            loss = (1 - distill) * ce + distill * distillation_loss(logits, teacher, 1.0)
        if not torch.isfinite(loss):
            from natkit.errors import DivergedError

            raise DivergedError(f"supernet loss became {loss.item()}")
        loss.backward()
        total += loss.item()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    return total / len(genomes)


def _optimizer(net, lr, weight_decay):
    # no weight decay on BN, biases and kernel transformation matrices (they start at identity)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or "transforms" in name else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=0.9, nesterov=True)


# channels_last: the depthwise 5x5/7x7 convolutions' backward is several times faster in it on CPU
# (results/perf/options.md); every later use of the supernet (evaluation, extraction) accepts it
MEMORY_FORMAT = torch.channels_last


def train_supernet(net, space, task, *, epochs: float, batch_size: int, lr: float, sampler, n_sampled: int,
                   teacher_genome, distill: float = 0.5, weight_decay: float = 4e-5, seed: int = 0,
                   label_smoothing: float = 0.1, max_batches: int | None = None, extra_genomes=(),
                   device="cpu", log=None) -> list[float]:
    """Train ``net`` for ``epochs`` on ``task``; each step trains the teacher subnet, the fixed
    ``extra_genomes`` and ``n_sampled`` genomes from ``sampler(rng)``."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    net.to(device, memory_format=MEMORY_FORMAT).train()
    opt = _optimizer(net, lr, weight_decay)
    r_max = max(space.config.resolutions)
    per_epoch = math.ceil(len(task.train) / batch_size)
    if max_batches:
        per_epoch = min(per_epoch, max_batches)
    total = max(1, int(round(per_epoch * epochs)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    bar = step_bar(total, sys.stderr.isatty(), desc="supernet training")
    losses, step, epoch = [], 0, 0
    while step < total:
        running, n = 0.0, 0
        for x, y in task.batches("train", batch_size, resolution=r_max, channels=net.in_channels, shuffle=True,
                                 seed=seed * 1000 + epoch, device=device):
            genomes = [teacher_genome, *extra_genomes] + [sampler(rng) for _ in range(n_sampled)]
            running += multi_subnet_step(net, space, opt, x, y, genomes, distill=distill,
                                         label_smoothing=label_smoothing)
            n += 1
            step += 1
            sched.step()
            bar.update(1)
            if step >= total or n >= per_epoch:
                break
        losses.append(running / max(n, 1))
        if log:
            log(f"supernet epoch {epoch}: loss {losses[-1]:.3f}")
        epoch += 1
    bar.close()
    net.set_active(space.decode(teacher_genome))
    return losses


# ----------------------------------------------------------------------------------------------
# source pretraining, cached


def pretrain_supernet(config: MBV3Config, source, *, epochs: float = 2, warmup_epochs: float = 1,
                      batch_size: int = 64, lr: float = 0.05, n_random: int = 2, distill: float = 0.5,
                      seed: int = 0, device="cpu", cache=None, log=None):
    """A supernet trained on ``source``: ``warmup_epochs`` of the largest subnet alone, then hidden
    channels sorted by importance, then ``epochs`` of the sandwich rule (largest, smallest and
    ``n_random`` random subnets per step, the smaller ones distilled in place from the largest).
    Trained once per configuration; later calls load it from ``$NATKIT_CACHE``."""
    from safetensors.torch import load_file, save_file

    from natkit.train.pretrain import TRAINING_CODE, cache_dir, code_digest

    in_ch = source.in_channels
    seed_everything(seed)
    net = OFAMobileNetV3(config, source.num_classes, in_ch)
    key = {"kind": "nat-supernet", "config": config.to_dict(), "task": source.spec, "n_train": len(source.train),
           "classes": source.num_classes, "in_channels": in_ch, "epochs": epochs, "warmup": warmup_epochs,
           "batch_size": batch_size, "lr": lr, "n_random": n_random, "distill": distill, "seed": seed, "v": 1,
           "code": code_digest((*TRAINING_CODE, __name__, NATSpace.__module__), net)}
    path = cache_dir(cache) / f"nat-supernet-{source.name}-{derive_seed(key):08x}.safetensors"
    meta_path = path.with_suffix(".json")
    space = NATSpace(config, num_classes=source.num_classes, in_channels=in_ch)
    big, small = space.extremes()
    if path.is_file() and meta_path.is_file():
        net.load_state_dict(load_file(str(path)))
        net.natkit_source = {**json.loads(meta_path.read_text()), "path": str(path), "cached": True}
        net.set_active(space.decode(big))
        return net.to(device)
    t0 = time.perf_counter()
    if warmup_epochs > 0:
        train_supernet(net, space, source, epochs=warmup_epochs, batch_size=batch_size, lr=lr,
                       sampler=None, n_sampled=0, teacher_genome=big, seed=seed, device=device, log=log)
    net.sort_channels()
    train_supernet(net, space, source, epochs=epochs, batch_size=batch_size, lr=lr,
                   sampler=lambda rng: space.sample(1, rng)[0], n_sampled=n_random, teacher_genome=big,
                   extra_genomes=(small,), distill=distill, seed=seed + 1, device=device, log=log)
    ev = InPlaceEvaluator(net, space, source, device=device, seed=seed, val_limit=2000)
    meta = {"config": key, "seconds": time.perf_counter() - t0,
            "val_error_largest": ev.error_of(big), "val_error_smallest": ev.error_of(small)}
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=2))
    net.natkit_source = {**meta, "path": str(path), "cached": False}
    net.set_active(space.decode(big))
    return net


def new_head(net: OFAMobileNetV3, num_classes: int, seed: int) -> OFAMobileNetV3:
    """Give the supernet a freshly initialised classifier for a target with ``num_classes``."""
    torch.manual_seed(seed)
    net.classifier = nn.Linear(net.classifier.in_features, num_classes).to(net.classifier.weight.device)
    net.num_classes = num_classes
    for a in (net.max_arch, net.active_arch):
        a["num_classes"] = num_classes
    return net


# ----------------------------------------------------------------------------------------------
# per-gene distributions for adaptation


class GeneDistribution:
    """Independent categorical distribution per gene, fitted to good genomes with Laplace smoothing."""

    def __init__(self, space: NATSpace, genomes=None, smoothing: float = 1.0):
        self.space = space
        self.probs = []
        G = np.zeros((0, space.n_var), dtype=int) if genomes is None else np.atleast_2d(genomes)
        for i in range(space.n_var):
            values = np.arange(space.xl[i], space.xu[i] + 1)
            counts = np.array([(G[:, i] == v).sum() for v in values], dtype=float) + smoothing
            self.probs.append((values, counts / counts.sum()))

    def sample(self, rng) -> list[int]:
        x = [int(rng.choice(v, p=p)) for v, p in self.probs]
        return self.space.repair(x)


# ----------------------------------------------------------------------------------------------
# in-place evaluation


class InPlaceEvaluator(Evaluator):
    """Weight-sharing evaluation: activate the subnet in the supernet, recalibrate BN on a fixed
    calibration subset of the target's train split, and measure top-1 error on ``split``."""

    def __init__(self, net: OFAMobileNetV3, space: NATSpace, task, *, n_calib: int = 256, calib_batch: int = 128,
                 split: str = "val", val_limit: int | None = None, latency: bool = False, device="cpu", seed=0):
        self.net, self.space, self.task = net, space, task
        self.n_calib, self.calib_batch, self.split, self.val_limit = n_calib, calib_batch, split, val_limit
        self.latency, self.device, self.seed = latency, device, seed
        self.version = 0  # bumped by every adaptation: results of older versions are stale
        self._calib: dict = {}
        self._val: dict = {}

    def settings(self) -> dict:
        return {"space": self.space.config.to_dict(), "n_calib": self.n_calib, "split": self.split,
                "val_limit": self.val_limit, "seed": self.seed, "supernet_version": self.version,
                "latency": self.latency}

    def _batches(self, cache, split, res, batch, shuffle, limit):
        if res not in cache:  # cached once per resolution: the same images for every candidate
            cache[res] = list(self.task.batches(split, batch, resolution=res, channels=self.net.in_channels,
                                                shuffle=shuffle, seed=self.seed, limit=limit, device=self.device))
        return cache[res]

    def images(self, resolution: int) -> list:
        """The image batches one evaluation at ``resolution`` reads: BN calibration, then the error split."""
        calib = self._batches(self._calib, "train", resolution, self.calib_batch, True, self.n_calib)
        split = self._batches(self._val, self.split, resolution, 256, False, self.val_limit)
        return [x for x, _ in calib] + [x for x, _ in split]

    @torch.no_grad()
    def error_of(self, genome) -> float:
        arch = self.space.decode(genome)
        self.net.set_active(arch)
        r = arch["resolution"]
        calib = self._batches(self._calib, "train", r, self.calib_batch, True, self.n_calib)
        recalibrate_bn(self.net, [x for x, _ in calib], self.device)
        self.net.eval()
        wrong = total = 0
        for x, y in self._batches(self._val, self.split, r, 256, False, self.val_limit):
            wrong += (self.net(x).argmax(1) != y).sum().item()
            total += len(y)
        return wrong / total

    def _evaluate(self, encoding):
        arch = self.space.decode(encoding)
        metrics = {"error": self.error_of(encoding), **count_params_macs(arch)}
        if self.latency:
            from natkit.measure.latency import measure_latency_ms

            sub = self.net.extract(arch)
            metrics["latency_ms"] = measure_latency_ms(sub, arch["resolution"], self.net.in_channels,
                                                       device=self.device)
        return metrics, arch, {"supernet_version": self.version}

    def model(self, genome, calibrated: bool = False) -> nn.Module:
        """The standalone subnet with BN recalibrated for it (what ``natkit export`` gives);
        ``calibrated`` says the supernet's BN already holds this subnet's statistics."""
        arch = self.space.decode(genome)
        if not calibrated or self.net.active_arch.get("genome") != arch["genome"]:
            self.error_of(genome)  # leaves the supernet's BN calibrated for this subnet
        sub = self.net.extract(arch).eval()
        sub.natkit_input = {"resolution": arch["resolution"], "channels": self.net.in_channels}
        return sub


def evaluate_split(model, task, split, arch, channels, device="cpu") -> float:
    return evaluate(model, task, split, device=device, resolution=arch["resolution"], channels=channels)["error"]
