"""Methods that measure on the first ``val_limit`` validation images (nat, ke) get the chance level of those
images: the binomial margin of their number and the class priors of that subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from natkit.core.chance import chance_level
from natkit.core.task import Split, Task
from natkit.train import evaluate


def _task(val_y) -> Task:
    """A two-class task whose val split has the given labels (pixels do not matter here)."""
    y = torch.as_tensor(np.asarray(val_y), dtype=torch.int64)
    split = lambda n: Split(torch.rand(n, 1, 4, 4), torch.arange(n) % 2)  # noqa: E731
    return Task("toy", "toy", 2, split(40), Split(torch.rand(len(y), 1, 4, 4), y), split(40))


@pytest.fixture()
def balanced():
    return _task(np.arange(2000) % 2)  # 2,000 val images, two balanced classes


@pytest.mark.parametrize("method, option", [("ke", {"val_limit": 50}), ("nat", {"val_limit": 50})])
def test_the_run_flags_errors_within_noise_of_the_images_it_measures(method, option, balanced, make_ctx):
    full = make_ctx(method, balanced, options={}).chance
    capped = make_ctx(method, balanced, options=option).chance
    assert full.n == 2000 and capped.n == 50
    # 40% error: 30 of 50 right, within the 99% binomial noise of a coin (up to 33 of 50), but far
    # outside it on 2,000 images (a coin gets at most ~1,052 right there)
    assert capped.at_chance(0.40) and not full.at_chance(0.40)
    assert not capped.at_chance(0.30)  # 35 of 50 right beats chance at alpha 1%
    row = make_ctx(method, balanced, options=option).writer.side_row([1], eval_key="k", metrics={
        "error": 0.40, "params": 1, "macs": 1})
    assert row.metrics.get("chance") is True  # the archive row of such a candidate is flagged


def test_subset_uses_its_own_class_priors():
    task = _task(np.r_[np.zeros(40, int), np.ones(10, int), np.arange(1950) % 2])  # first 50: 80% class 0
    assert chance_level(task).chance_error == pytest.approx(0.5, abs=0.01)
    sub = chance_level(task, 50)
    assert sub.n == 50 and sub.chance_error == pytest.approx(0.2)  # "always class 0" gets 80% of these
    assert sub.at_chance(0.15) and not chance_level(task).at_chance(0.15)
    assert chance_level(task, 0) is chance_level(task) and chance_level(task, 5000) is chance_level(task)


def test_the_subset_is_the_images_the_evaluators_measure(balanced):
    """``evaluate(..., limit=n)`` (ke) and ``Task.batches(limit=n)`` unshuffled (nat) read the first n images,
    the ones ``chance_level(task, n)`` counts."""
    seen = torch.cat([y for _, y in balanced.batches("val", 16, limit=50)])
    assert torch.equal(seen, balanced.val.y[:50])

    class Constant(torch.nn.Module):  # always class 0
        def forward(self, x):
            return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)

    task = _task(np.r_[np.zeros(40, int), np.ones(10, int), np.arange(1950) % 2])
    assert evaluate(Constant(), task, "val", limit=50)["error"] == pytest.approx(chance_level(task, 50).chance_error)
