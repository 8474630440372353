"""Front and hypervolume plots (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from natkit.core.archive import nondominated

LABELS = {"error": "val error (1 - top-1)", "params": "parameters", "macs": "MACs (one image)",
          "latency_ms": "latency, batch 1 (ms)", "test_error": "test error"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(archive, path, *, x="macs", y="error", methods=None, title=None, objectives=None) -> Path:
    """Every ok candidate per method (faint), each method's front (line), and the combined front.

    ``objectives`` (default ``(y, x)``) are the objectives the front is computed over: with more than
    the two plotted, front members are drawn as markers (a projection of a higher-dimensional front is
    no staircase). Candidates at chance level (natkit/core/chance.py) are never drawn."""
    plt = _plt()
    objectives = list(objectives or (y, x))
    cands = [c for c in archive.candidates(method=methods, status="ok")
             if c.metric(x) is not None and c.metric(y) is not None and not c.extra.get("chance")]
    if set(objectives) != {x, y}:
        return _plot_projected(plt, archive, cands, path, x, y, methods, objectives, title)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    by_method: dict = {}
    for c in cands:
        by_method.setdefault(c.method, []).append(c)
    for i, (m, cs) in enumerate(sorted(by_method.items())):
        P = np.array([[c.metric(x), c.metric(y)] for c in cs], dtype=float)
        color = f"C{i % 10}"
        ax.scatter(P[:, 0], P[:, 1], s=10, alpha=0.3, color=color)
        F = P[nondominated(P)]
        F = F[np.argsort(F[:, 0])]
        ax.step(F[:, 0], F[:, 1], where="post", color=color, marker="o", ms=4, label=f"{m} ({len(cs)})")
    if len(by_method) > 1 and cands:
        P = np.array([[c.metric(x), c.metric(y)] for c in cands], dtype=float)
        F = P[nondominated(P)]
        F = F[np.argsort(F[:, 0])]
        ax.step(F[:, 0], F[:, 1], where="post", color="black", lw=2, alpha=0.6, label="combined front")
    return _finish(plt, fig, ax, path, x, y, title or f"Pareto front: {y} vs {x}", bool(by_method))


def _plot_projected(plt, archive, cands, path, x, y, methods, objectives, title) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    names = sorted({c.method for c in cands})
    for i, m in enumerate(names):
        color = f"C{i % 10}"
        P = np.array([[c.metric(x), c.metric(y)] for c in cands if c.method == m], dtype=float)
        ax.scatter(P[:, 0], P[:, 1], s=10, alpha=0.3, color=color)
        front = [c for c in archive.front(objectives, method=m) if c.metric(x) is not None and c.metric(y) is not None]
        if front:
            F = np.array([[c.metric(x), c.metric(y)] for c in front], dtype=float)
            ax.scatter(F[:, 0], F[:, 1], s=30, color=color, edgecolor="black", label=f"{m} front ({len(front)})")
    return _finish(plt, fig, ax, path, x, y, title or f"{y} vs {x}; fronts over {', '.join(objectives)}", bool(names))


def _finish(plt, fig, ax, path, x, y, title: str, any_points: bool) -> Path:
    """Axes (log scale for counts), labels, legend or an empty-plot note; save and close."""
    if x in ("macs", "params"):
        ax.set_xscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any_points:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ok candidates", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hv(archive, path, *, methods=None) -> Path:
    """Hypervolume per generation of every run (normalised by each run's fixed bounds)."""
    plt = _plt()
    runs = {r.id: r for r in archive.runs()}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    gens = archive.generations()
    by_run: dict = {}
    for g in gens:
        by_run.setdefault(g["run_id"], []).append(g)
    colors = {}
    for rid, gs in sorted(by_run.items()):
        r = runs.get(rid)
        if r is None or (methods and r.method not in methods):
            continue
        color = colors.setdefault(r.method, f"C{len(colors) % 10}")
        ax.plot([g["n_evals"] for g in gs], [g["hv"] for g in gs], marker=".", color=color,
                label=f"{r.method} (run {rid})")
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("hypervolume (normalised objectives)")
    ax.set_title("hypervolume per generation")
    ax.grid(alpha=0.3)
    if by_run:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
