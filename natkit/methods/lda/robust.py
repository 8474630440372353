"""Robustness of pruned vs unpruned networks: accuracy under Gaussian noise and FGSM.

Both perturbations act on the raw images in [0, 1] (before the task's normalisation and resize),
so sigma and epsilon read as fractions of the pixel range whatever the network's input size:
* noise: x + sigma * N(0, 1), clipped to [0, 1];
* FGSM (Goodfellow et al.): x + epsilon * sign(d loss / d x), clipped to [0, 1], white-box on the
  network under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from natkit.errors import ConfigError

DEFAULT_SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.4)
DEFAULT_EPSILONS = (0.0, 0.02, 0.05, 0.1)


def _raw_batches(task, split, batch_size, limit):
    data = task.split(split)
    n = len(data) if limit is None else min(len(data), int(limit))
    for i in range(0, n, batch_size):
        yield data.x[i:i + batch_size], data.y[i:i + batch_size]


def noise_accuracy(model: nn.Module, task, sigma: float, *, split="val", resolution=None, channels=None,
                   seed=0, limit=None, batch_size=256) -> float:
    if sigma < 0:
        raise ConfigError(f"noise sigma must be >= 0, got {sigma}")
    model.eval()
    g = torch.Generator().manual_seed(int(seed))
    correct = total = 0
    with torch.no_grad():
        for x, y in _raw_batches(task, split, batch_size, limit):
            xn = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1) if sigma > 0 else x
            correct += (model(task.transform(xn, resolution, channels)).argmax(1) == y).sum().item()
            total += len(y)
    return correct / max(total, 1)


def fgsm_accuracy(model: nn.Module, task, epsilon: float, *, split="val", resolution=None, channels=None,
                  limit=None, batch_size=256) -> float:
    if epsilon < 0:
        raise ConfigError(f"FGSM epsilon must be >= 0, got {epsilon}")
    model.eval()
    correct = total = 0
    for x, y in _raw_batches(task, split, batch_size, limit):
        if epsilon > 0:
            x = x.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(task.transform(x, resolution, channels)), y)
                (grad,) = torch.autograd.grad(loss, x)
            x = (x.detach() + epsilon * grad.sign()).clamp(0, 1)
        with torch.no_grad():
            correct += (model(task.transform(x, resolution, channels)).argmax(1) == y).sum().item()
        total += len(y)
    return correct / max(total, 1)


def robust_error(model, task, *, sigma=0.2, epsilon=0.05, split="val", resolution=None, channels=None,
                 seed=0, limit=None) -> float:
    """The optional objective: mean error under noise sigma and under FGSM epsilon (both settings)."""
    a = noise_accuracy(model, task, sigma, split=split, resolution=resolution, channels=channels, seed=seed,
                       limit=limit)
    b = fgsm_accuracy(model, task, epsilon, split=split, resolution=resolution, channels=channels, limit=limit)
    return 1.0 - (a + b) / 2


def robustness_table(models: dict, task, *, sigmas=DEFAULT_SIGMAS, epsilons=DEFAULT_EPSILONS, split="test",
                     resolution=None, channels=None, seed=0, limit=None) -> list[dict]:
    """One row per (model, attack, strength) with the accuracy."""
    rows = []
    for name, model in models.items():
        for s in sigmas:
            rows.append({"model": name, "attack": "noise", "strength": float(s),
                         "accuracy": noise_accuracy(model, task, s, split=split, resolution=resolution,
                                                    channels=channels, seed=seed, limit=limit)})
        for e in epsilons:
            rows.append({"model": name, "attack": "fgsm", "strength": float(e),
                         "accuracy": fgsm_accuracy(model, task, e, split=split, resolution=resolution,
                                                   channels=channels, limit=limit)})
    return rows


def table_markdown(rows: list[dict]) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    keys = list(dict.fromkeys((r["attack"], r["strength"]) for r in rows))
    acc = {(r["model"], r["attack"], r["strength"]): r["accuracy"] for r in rows}
    head = "| attack | strength | " + " | ".join(models) + " |"
    sep = "|---|---|" + "---|" * len(models)
    lines = [head, sep]
    for a, s in keys:
        lines.append(f"| {a} | {s:g} | " + " | ".join(f"{100 * acc[(m, a, s)]:.1f}%" for m in models) + " |")
    return "\n".join(lines)


def plot_robustness(rows: list[dict], path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, attack, label in ((axes[0], "noise", "Gaussian noise sigma (pixel range)"),
                              (axes[1], "fgsm", "FGSM epsilon (pixel range)")):
        for model in dict.fromkeys(r["model"] for r in rows):
            pts = sorted((r["strength"], r["accuracy"]) for r in rows if r["model"] == model and r["attack"] == attack)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, 100 * np.asarray(ys), marker="o", label=model)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_robustness(rows: list[dict], out_dir, stem="robustness") -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    (out_dir / f"{stem}.md").write_text(table_markdown(rows) + "\n")
    plot = plot_robustness(rows, out_dir / f"{stem}.png")
    return {"json": str(out_dir / f"{stem}.json"), "plot": str(plot)}
