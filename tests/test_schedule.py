"""Training budgets scale with the data: epochs are a budget of optimisation steps."""

import pytest

from natkit.train import TrainConfig
from natkit.train.schedule import MAX_EPOCHS, REFERENCE_TRAIN_IMAGES, budget_of, scaled, scaled_epochs


def test_small_set_gets_the_reference_steps():
    # 3 epochs at batch 64 are 54 steps on the reference set; 128 images are 2 steps an epoch
    assert scaled_epochs(3, 128, 64) == pytest.approx(27)
    b = budget_of(TrainConfig(epochs=3, batch_size=64), 128)
    assert b["steps"] == 54 and b["stated_epochs"] == 3


def test_bounds_large_sets_untouched_tiny_sets_capped():
    assert scaled_epochs(3, REFERENCE_TRAIN_IMAGES, 64) == 3
    assert scaled_epochs(3, 60_000, 64) == 3  # more data is never trained less than stated
    assert scaled_epochs(10, 4, 64) == MAX_EPOCHS  # 180 steps would be 180 one-step epochs: capped
    assert scaled_epochs(2, 4, 64) == 36  # below the cap: exactly the steps
    assert scaled_epochs(150, 4, 64) == 150  # a setting asking for more than the cap keeps it


def test_max_batches_caps_both_sides():
    # 18 batches per epoch on the reference, capped at 5: the budget is 5 steps per stated epoch
    assert scaled_epochs(2, 128, 64, max_batches=5) == pytest.approx(5)
    cfg = scaled(TrainConfig(epochs=1, batch_size=32, max_batches=5), 64)
    assert cfg.epochs == pytest.approx(2.5) and cfg.max_batches == 5


def test_scaled_training_runs_the_reference_number_of_steps(monkeypatch):
    """The loop really takes the scaled number of optimisation steps on a 128-image task."""
    import torch

    from natkit.core.task import Split, Task
    from natkit.train import train

    g = torch.Generator().manual_seed(0)
    split = Split(torch.rand(128, 1, 8, 8, generator=g), torch.arange(128) % 2)
    task = Task("toy", "toy", 2, split, split, split)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    steps = []
    real_step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (steps.append(1), real_step(self, *a, **k))[1])
    train(model, task, scaled(TrainConfig(epochs=3, batch_size=64), len(task.train)))
    assert len(steps) == 54
