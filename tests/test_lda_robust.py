"""Accuracy under Gaussian noise and FGSM, on a hand-built task whose answers are known."""

import torch
import torch.nn as nn

from natkit.core.task import Split, Task
from natkit.methods.lda import robust as R

torch.set_num_threads(1)


class MeanBrightness(nn.Module):
    """Class 1 iff the image's mean pixel (before normalisation) is above 0.5."""

    def __init__(self, task):
        super().__init__()
        self.mean, self.std = float(task.mean[0]), float(task.std[0])

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)) * self.std + self.mean - 0.5
        return torch.stack([-m, m], 1)


def _task():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    x = (0.4 + 0.2 * y.float()).view(-1, 1, 1, 1) + 0.01 * torch.randn(40, 1, 6, 6, generator=g)
    s = Split(x.clamp(0, 1), y)
    return Task("toy", "toy", 2, s, s, s)


def test_clean_noise_and_fgsm_accuracy():
    task = _task()
    model = MeanBrightness(task)
    assert R.noise_accuracy(model, task, 0.0) == 1.0
    assert R.fgsm_accuracy(model, task, 0.0) == 1.0
    # a mean over 36 pixels averages small noise away
    assert R.noise_accuracy(model, task, 0.05) == 1.0
    # FGSM moves every pixel by eps against the label: 0.4 + 0.15 > 0.5 and 0.6 - 0.15 < 0.5
    assert R.fgsm_accuracy(model, task, 0.15) == 0.0
    assert R.fgsm_accuracy(model, task, 0.05) == 1.0
    assert R.robust_error(model, task, sigma=0.05, epsilon=0.15) == 0.5


def test_table_and_plot(tmp_path):
    task = _task()
    rows = R.robustness_table({"a": MeanBrightness(task)}, task, sigmas=(0.0, 0.05), epsilons=(0.0, 0.15))
    assert [r["accuracy"] for r in rows] == [1.0, 1.0, 1.0, 0.0]
    files = R.write_robustness(rows, tmp_path)
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert "| fgsm | 0.15 | 0.0% |" in (tmp_path / "robustness.md").read_text()
    assert files["plot"].endswith("robustness.png")
