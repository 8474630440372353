"""The one training loop every method uses, and evaluation."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError, DivergedError
from natkit.utils.seed import seed_everything


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # sgd | adam | adamw
    schedule: str = "cosine"  # cosine | constant
    label_smoothing: float = 0.0
    batch_size: int = 64
    distill_weight: float = 0.0  # weight of the KL term towards ``teacher``'s soft labels
    distill_temperature: float = 4.0
    max_batches: int | None = None  # per epoch; caps work in quick modes

    def __post_init__(self):
        """Reject a bad value (from TOML or --option) here, in one line, not deep inside training."""
        import numbers

        def bad(name, rule):
            raise ConfigError(f"train.{name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("epochs", "lr", "momentum", "weight_decay", "label_smoothing", "distill_weight",
                     "distill_temperature"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                bad(name, "a finite non-negative number")
        if self.lr <= 0:
            bad("lr", "positive")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "in [0, 1)")
        for name in ("batch_size", "max_batches"):
            v = getattr(self, name)
            if (v is not None or name == "batch_size") and (
                    isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
                bad(name, "a positive integer")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            bad("optimizer", "sgd, adam or adamw")
        if self.schedule not in ("cosine", "constant"):
            bad("schedule", "cosine or constant")

    def to_dict(self) -> dict:
        """Integral floats as ints: a cache or evaluation key must not depend on whether a value was
        typed ``2`` or ``2.0`` (a typed float option gives 2.0 where a loose dict gave 2)."""
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in asdict(self).items()}


def make_optimizer(params, cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}: use sgd, adam or adamw")


def distillation_loss(logits, teacher_logits, temperature):
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean") * t * t


def train(model: nn.Module, task, cfg: TrainConfig = TrainConfig(), *, device="cpu", resolution=None,
          channels=None, teacher: nn.Module | None = None, params=None, seed: int = 0, split: str = "train",
          progress: bool | None = None, loss_hook=None) -> list[float]:
    """Train ``model`` on ``task``; returns the mean loss per epoch.

    ``params`` restricts the optimised parameters (others still run forward; freezing is the
    caller's choice through ``requires_grad``). ``loss_hook(model, logits, y) -> extra loss`` lets a
    method add a regulariser. Raises ``DivergedError`` on a non-finite loss.
    """
    seed_everything(seed)
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: no parameter requires grad")
    opt = make_optimizer(params, cfg)
    n = len(task.split(split))
    per_epoch = math.ceil(n / cfg.batch_size)
    if cfg.max_batches:
        per_epoch = min(per_epoch, cfg.max_batches)
    total = max(1, int(round(per_epoch * cfg.epochs)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if cfg.schedule == "cosine" else None
    if progress is None:
        progress = sys.stderr.isatty() and total > 200
    bar = step_bar(total, progress)
    losses, step, epoch = [], 0, 0
    while step < total:
        running, count = 0.0, 0
        for x, y in task.batches(split, cfg.batch_size, resolution=resolution, channels=channels,
                                 shuffle=True, seed=seed * 1000 + epoch, device=device):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if teacher is not None and cfg.distill_weight > 0:
                with torch.no_grad():
                    t_logits = teacher(x)
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * distillation_loss(
                    logits, t_logits, cfg.distill_temperature)
            if loss_hook is not None:
                loss = loss + loss_hook(model, logits, y)
            if not torch.isfinite(loss):
                bar.close()
                raise DivergedError(f"loss became {loss.item()} at step {step} (lr={cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            running += loss.item() * len(y)
            count += len(y)
            step += 1
            bar.update(1)
            if step >= total or (cfg.max_batches and count >= cfg.max_batches * cfg.batch_size):
                break
        losses.append(running / max(count, 1))
        epoch += 1
    bar.close()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, task, split: str = "val", *, device="cpu", resolution=None, channels=None,
             limit: int | None = None, batch_size: int = 256) -> dict:
    """Top-1 ``error`` and mean cross-entropy ``loss`` on a split."""
    was_training = model.training
    model.to(device).eval()
    # sums stay on the device: one synchronisation at the end instead of two per batch
    correct, loss, total = torch.zeros((), dtype=torch.long, device=device), torch.zeros((), device=device), 0
    for x, y in task.batches(split, batch_size, resolution=resolution, channels=channels, limit=limit,
                             device=device):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError(f"split {split!r} is empty")
    return {"error": 1.0 - int(correct) / total, "loss": float(loss) / total}


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def step_bar(total, enabled, desc=None):
    """A transient bar of training steps (stderr), one line below the search's own progress line."""
    if not enabled:
        return _NoBar()
    import os

    from tqdm import tqdm

    pos = os.environ.get("NATKIT_PROGRESS_POSITION", "")
    return tqdm(total=total, leave=False, unit="step", desc=desc, position=int(pos) + 1 if pos.isdigit() else None)
