"""Training budgets that scale with the data: a method's epochs are a budget of optimisation steps.

Every method states its training in epochs, and those epochs were tuned on natkit's default target,
digits (``REFERENCE_TRAIN_IMAGES`` = 1,150 training images). An epoch of 128 images is 2 SGD steps at
batch size 64 instead of 18, so the same setting gives a small user task a ninth of the optimisation
and its candidates stay at chance. Here a setting of ``e`` epochs means the number of optimisation
steps ``e`` epochs take on the reference set, and is turned into epochs of the actual training set:

    steps  = e * steps_per_epoch(REFERENCE_TRAIN_IMAGES)
    epochs = clamp(steps / steps_per_epoch(n_train), lower = e, upper = max(e, MAX_EPOCHS))

with ``steps_per_epoch(n) = min(ceil(n / batch_size), max_batches)``. Bounds:

- never fewer epochs than stated: a task larger than the reference keeps its epochs (more data is
  never trained less than the setting says);
- at most ``MAX_EPOCHS`` (100) passes over a tiny set, unless the setting itself asks for more, so a
  20-image task is not memorised for thousands of epochs.

A set of at least the reference size is untouched, so results on digits and Fashion-MNIST are as
before. See docs/training_budget.md.
"""

from __future__ import annotations

import math
from dataclasses import replace

REFERENCE_TRAIN_IMAGES = 1150  # digits' train split (1,797 images less 20% test and 20% val)
MAX_EPOCHS = 100.0


def steps_per_epoch(n_images: int, batch_size: int, max_batches: int | None = None) -> int:
    per = max(1, math.ceil(int(n_images) / int(batch_size)))
    return min(per, int(max_batches)) if max_batches else per


def scaled_epochs(epochs: float, n_train: int, batch_size: int, max_batches: int | None = None, *,
                  reference: int = REFERENCE_TRAIN_IMAGES, max_epochs: float = MAX_EPOCHS) -> float:
    """Epochs of an ``n_train``-image set that give the optimisation steps ``epochs`` give on the
    reference set, within the bounds above."""
    epochs = float(epochs)
    if epochs <= 0 or n_train <= 0:
        return epochs
    steps = epochs * steps_per_epoch(reference, batch_size, max_batches)
    need = steps / steps_per_epoch(n_train, batch_size, max_batches)
    return float(min(max(need, epochs), max(epochs, max_epochs)))


def scaled(cfg, n_train: int):
    """``cfg`` (a TrainConfig) with its epochs scaled to an ``n_train``-image training set."""
    epochs = scaled_epochs(cfg.epochs, n_train, cfg.batch_size, cfg.max_batches)
    return cfg if epochs == cfg.epochs else replace(cfg, epochs=epochs)


def budget_of(cfg, n_train: int) -> dict:
    """What a run records: stated epochs, scaled epochs and optimisation steps."""
    s = scaled(cfg, n_train)
    per = steps_per_epoch(n_train, cfg.batch_size, cfg.max_batches)
    return {"stated_epochs": cfg.epochs, "epochs": s.epochs, "steps": max(1, round(per * s.epochs)),
            "n_train": int(n_train), "batch_size": cfg.batch_size}
