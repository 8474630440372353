"""The subjective (human) relevance criterion of progressive simplification.

For each conv layer, when its turn comes (after the earlier layers were simplified and retrained), natkit
writes two pictures into ``OUT/human/``:

- ``convK_<layer>_sheet.png``: every kernel's activation map (rows, numbered) on a few images of every
  class (columns, labelled; the inputs are in the top row). Each row is scaled by that kernel's maximum
  over the shown images, so a row shows *where* and *on which classes* the kernel responds.
- ``convK_<layer>_projection.png``: the kernels as numbered points in 2-D (scikit-learn PCA, or t-SNE with
  ``projection=tsne``) of their activation profiles (average-pooled activation on every sheet image);
  kernels that respond alike sit together, so redundant groups are easy to point at.

The person answers with a decision file or at the terminal. Decision file (TOML or JSON), per layer the
kernels to eliminate; a layer is named by its module name (as in the picture titles) or ``convK``
(1-based position among the convs); a layer that is not listed keeps all its kernels::

    [eliminate]
    "features.0" = [3, 7, 12]
    conv2 = [0, 1]

    {"eliminate": {"features.0": [3, 7, 12], "conv2": [0, 1]}}

Kernel numbers are those of the layer when its turn comes, which are its original numbers: simplifying
earlier layers removes only input channels of a later layer, never its kernels. Every decision lands in
``OUT/human/decisions.json`` and in the archive (``extra.decisions``).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.methods.common import finalize
from natkit.methods.progressive.relevance import _stream, pooled_activations

ELIMINATE_KEY = "eliminate"


# --------------------------------------------------------------------------------------------
# decision files


def read_decision_file(path) -> dict:
    """Parse a TOML or JSON decision file into ``{layer key: [kernels]}`` (not yet checked against a model)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"decision file not found: {p}")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        if p.suffix.lower() == ".json" or text.lstrip().startswith("{"):
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"malformed decision file {p}: {exc}") from None
    if not isinstance(data, dict) or ELIMINATE_KEY not in data:
        raise ConfigError(f"decision file {p} needs a table {ELIMINATE_KEY!r} mapping layers to kernel lists")
    unknown = sorted(set(data) - {ELIMINATE_KEY})
    if unknown:
        raise ConfigError(f"decision file {p}: unknown key {unknown[0]!r} (only {ELIMINATE_KEY!r})")
    table = data[ELIMINATE_KEY]
    if not isinstance(table, dict):
        raise ConfigError(f"decision file {p}: {ELIMINATE_KEY!r} must be a table of layer = [kernels]")
    out = {}
    for layer, kernels in table.items():
        if not isinstance(kernels, list):
            raise ConfigError(f"decision file {p}: layer {layer!r} needs a list of kernel numbers, got {kernels!r}")
        for k in kernels:
            if isinstance(k, bool) or not isinstance(k, int):
                raise ConfigError(f"decision file {p}: layer {layer!r} has non-integer kernel {k!r}")
        out[str(layer)] = list(kernels)
    return out


def resolve_decisions(raw: dict, layers: list[tuple[str, int]], where: str = "decision file") -> dict[int, list[int]]:
    """Map layer keys to conv positions and check every kernel number against the layer's width.

    ``layers`` lists ``(module name, number of kernels)`` of the convs in forward order.
    """
    by_name = {name: i for i, (name, _) in enumerate(layers)}
    out: dict[int, list[int]] = {}
    for key, kernels in raw.items():
        m = re.fullmatch(r"conv(\d+)", key)
        if key in by_name:
            pos = by_name[key]
        elif m and 1 <= int(m.group(1)) <= len(layers):
            pos = int(m.group(1)) - 1
        else:
            names = ", ".join(n for n, _ in layers)
            raise ConfigError(f"{where}: unknown layer {key!r}; layers are {names} (or conv1..conv{len(layers)})")
        if pos in out:
            raise ConfigError(f"{where}: layer {layers[pos][0]!r} is given twice")
        width = layers[pos][1]
        if len(set(kernels)) != len(kernels):
            raise ConfigError(f"{where}: layer {key!r} lists a kernel twice: {kernels}")
        bad = [k for k in kernels if not 0 <= k < width]
        if bad:
            raise ConfigError(f"{where}: layer {key!r} has no kernel {bad[0]} (kernels 0..{width - 1})")
        if len(kernels) >= width:
            raise ConfigError(f"{where}: layer {key!r} would lose all {width} kernels; keep at least one")
        out[pos] = sorted(kernels)
    return out


def load_decisions(path, layers: list[tuple[str, int]]) -> dict[int, list[int]]:
    return resolve_decisions(read_decision_file(path), layers, where=f"decision file {path}")


def parse_kernel_list(text: str, width: int) -> list[int]:
    """``"1, 4, 7-9"`` -> [1, 4, 7, 8, 9]; empty means none."""
    out: list[int] = []
    for part in [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"not a kernel number or range: {part!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"empty range {part!r}")
        out.extend(range(lo, hi + 1))
    bad = [k for k in out if k >= width]
    if bad:
        raise ConfigError(f"no kernel {bad[0]} (kernels 0..{width - 1})")
    if len(set(out)) >= width:
        raise ConfigError(f"cannot eliminate all {width} kernels; keep at least one")
    return sorted(set(out))


def prompt_kernels(pos: int, name: str, width: int, sheets: list[Path], *, input_fn=input, print_fn=print,
                   attempts: int = 5) -> list[int]:
    print_fn(f"conv{pos + 1} ({name}): {width} kernels, numbered 0..{width - 1}; see " + ", ".join(map(str, sheets)))
    for _ in range(attempts):
        try:
            return parse_kernel_list(input_fn(f"kernels of conv{pos + 1} to eliminate (e.g. 1,4,7-9; empty = none): "),
                                     width)
        except ConfigError as exc:
            print_fn(f"  {exc}; try again")
    raise ConfigError(f"no valid answer for conv{pos + 1} after {attempts} attempts")


# --------------------------------------------------------------------------------------------
# what the person looks at


def sheet_images(task, per_class: int, *, resolution=None, channels=None, seed: int = 0, split: str = "train"):
    """``per_class`` images of every class (seeded choice), transformed; returns (x, y) sorted by class."""
    data = task.split(split)
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(data), generator=g)
    picks = []
    for c in range(task.num_classes):
        idx = order[data.y[order] == c][:per_class]
        picks.append(idx)
    idx = torch.cat(picks)
    x = task.transform(data.x[idx], resolution, channels)
    return x, data.y[idx], data.x[idx]


def activation_maps(model: nn.Module, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The conv's activation maps (after BN/ReLU), ``(N, C, H, W)``."""
    maps = []
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            _stream(model, conv, [(x, torch.zeros(len(x), dtype=torch.long))], lambda a, _y: maps.append(a.cpu()))
    finally:
        model.train(was)
    return maps[0]


def _tile(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """Rows x cols x H x W -> one mosaic with a pad of NaN between tiles (NaN renders as background)."""
    r, c, h, w = images.shape
    out = np.full((r * (h + pad) - pad, c * (w + pad) - pad), np.nan)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad): i * (h + pad) + h, j * (w + pad): j * (w + pad) + w] = images[i, j]
    return out


def write_sheet(maps: torch.Tensor, raw: torch.Tensor, labels: torch.Tensor, class_names: list, title: str,
                path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    n, c, h, w = maps.shape
    inputs = F.interpolate(raw.float(), size=(h, w), mode="bilinear", align_corners=False).mean(1)  # N,H,W
    inputs = (inputs - inputs.amin()) / (inputs.amax() - inputs.amin() + 1e-12)
    per_kernel = maps.permute(1, 0, 2, 3).numpy()  # C, N, H, W
    scale = per_kernel.reshape(c, -1).max(axis=1).reshape(c, 1, 1, 1)
    rows = np.concatenate([inputs.numpy()[None], per_kernel / np.maximum(scale, 1e-12)], axis=0)
    mosaic = _tile(rows)
    fig_w = min(2 + 0.45 * n, 30)
    fig_h = min(1 + 0.45 * (c + 1), 60)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.imshow(np.ma.masked_invalid(mosaic), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([(i + 0.5) * (h + 1) - 1 for i in range(c + 1)])
    ax.set_yticklabels(["input"] + [str(k) for k in range(c)], fontsize=7)
    ax.set_xticks([(j + 0.5) * (w + 1) - 1 for j in range(n)])
    names = [class_names[int(y)] if class_names and int(y) < len(class_names) else str(int(y)) for y in labels]
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("kernel")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def kernel_projection(profiles: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates of the kernels (rows of ``profiles``: one activation profile per kernel)."""
    X = np.asarray(profiles, dtype=np.float64)
    X = X - X.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.maximum(norm, 1e-12)  # compare the shape of the response, not its loudness
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(2, X.shape[0], X.shape[1])
        Z = PCA(n_components=k, random_state=seed).fit_transform(X)
        return np.pad(Z, ((0, 0), (0, 2 - k)))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = max(1.0, min(30.0, (X.shape[0] - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)
    raise ConfigError(f"unknown projection {method!r}: use pca or tsne")


def write_projection(Z: np.ndarray, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(Z[:, 0], Z[:, 1], s=18, alpha=0.5)
    for k, (a, b) in enumerate(Z):
        ax.annotate(str(k), (a, b), fontsize=8, ha="center", va="bottom")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def layer_pictures(model, conv, name: str, pos: int, task, out_dir: Path, *, per_class: int = 2, resolution=None,
                   channels=None, projection: str = "pca", seed: int = 0) -> list[Path]:
    x, y, raw = sheet_images(task, per_class, resolution=resolution, channels=channels, seed=seed)
    maps = activation_maps(model, conv, x)
    stem = f"conv{pos + 1}_{name.replace('.', '_')}"
    sheet = write_sheet(maps, raw, y, getattr(task, "class_names", []),
                        f"conv{pos + 1} ({name}): activation maps of kernels 0..{maps.shape[1] - 1}",
                        out_dir / f"{stem}_sheet.png")
    profiles, _ = pooled_activations(model, conv, [(x, y)])
    Z = kernel_projection(profiles.T, projection, seed)
    proj = write_projection(Z, f"conv{pos + 1} ({name}): kernels by activation profile ({projection.upper()})",
                            out_dir / f"{stem}_projection.png")
    return [sheet, proj]


# --------------------------------------------------------------------------------------------
# the decide function for the progressive process


class HumanDecider:
    """Callable for ``simplify(decide=...)``: writes the layer's pictures, then reads the file or asks.

    ``decisions`` (from ``load_decisions``) answers without asking; otherwise ``input_fn`` is asked
    (the terminal by default). ``records`` keeps every decision with the pictures it was made on.
    """

    def __init__(self, task, out_dir, *, decisions: dict[int, list[int]] | None = None, input_fn: Callable | None = None,
                 print_fn: Callable = print, per_class: int = 2, resolution=None, channels=None,
                 projection: str = "pca", seed: int = 0, pictures: bool = True):
        if decisions is None and input_fn is None and not sys.stdin.isatty():
            raise ConfigError("relevance 'human' needs --option decisions=FILE when there is no terminal to ask at")
        self.task, self.out_dir = task, Path(out_dir)
        self.decisions, self.input_fn, self.print_fn = decisions, input_fn or input, print_fn
        self.kw = dict(per_class=per_class, resolution=resolution, channels=channels, projection=projection,
                       seed=seed)
        self.pictures = pictures
        self.records: list[dict] = []

    def __call__(self, pos: int, name: str, conv: nn.Conv2d, model: nn.Module) -> list[int]:
        pics = layer_pictures(model, conv, name, pos, self.task, self.out_dir, **self.kw) if self.pictures else []
        width = conv.out_channels
        if self.decisions is not None:
            kernels, how = list(self.decisions.get(pos, [])), "file"
        else:
            kernels, how = prompt_kernels(pos, name, width, pics, input_fn=self.input_fn,
                                          print_fn=self.print_fn), "prompt"
        self.records.append({"layer": name, "position": pos + 1, "kernels_before": width, "eliminate": kernels,
                             "from": how, "pictures": [str(p) for p in pics]})
        self.save()
        return kernels

    def save(self) -> Path:
        path = self.out_dir / "decisions.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"decisions": self.records}, indent=2))
        return path


# --------------------------------------------------------------------------------------------
# the run


def run_human(ctx, base: nn.Module, rt, s: dict) -> None:
    """One progressive simplification driven by a person; every state after a layer is archived.

    The encoding of a state is the list, per conv layer, of the kernels eliminated so far (later layers
    ``[]``), so the archive shows exactly what was decided.
    """
    import copy

    from natkit.methods.progressive.process import conv_widths, measure_state, pruned_arch, simplify, weight_layers

    layers = [(l.name, int(l.module.out_channels)) for l in weight_layers(base) if l.is_conv]
    decisions = load_decisions(s["decisions"], layers) if s.get("decisions") else None
    human_dir = Path(ctx.out_dir) / "human"
    decider = HumanDecider(ctx.task, human_dir, decisions=decisions, per_class=s["images_per_class"],
                           resolution=rt.resolution, channels=rt.channels, projection=s["projection"], seed=ctx.seed)
    if decisions is not None:
        ctx.log(f"human relevance from {s['decisions']}: " +
                ", ".join(f"conv{p + 1} -{len(k)}" for p, k in sorted(decisions.items())))
    key = ctx.eval_key({"relevance": "human", "train": rt.cfg.to_dict(), "resolution": rt.resolution,
                        "seed": ctx.seed, "base_widths": conv_widths(base)})
    encoding = [[] for _ in layers]
    model = copy.deepcopy(base)
    n_layers = len(layers)

    def archive_state(pos, step, m, stage):
        encoding[pos] = list(step.eliminated)
        m.natkit_arch = pruned_arch(m)
        extra = {"stage": stage, "relevance": "human", "decisions": decider.records, "widths": conv_widths(m)}
        # measured under this process's claim, and only if no process has archived the state yet
        row = ctx.writer.side_row(copy.deepcopy(encoding), eval_key=key, model=m, extra=extra, generation=pos,
                                  metrics=lambda: measure_state(m, ctx.task, rt, ctx.objectives))
        cid, metrics = row.id, row.measured()
        ctx.log(f"{stage}: conv{pos + 1} -{len(step.eliminated)} kernels, val error {metrics['error']:.4f}, "
                f"MACs {metrics['macs']:,}")
        return cid

    archived: list[int] = []

    def on_layer(pos, step, m):
        # a layer without eliminations leaves the state unchanged: archive only new states, and the
        # unchanged network once if the person eliminated nothing at all
        if step.eliminated or (pos == n_layers - 1 and not archived):
            archived.append(archive_state(pos, step, m, f"layer {pos + 1}"))

    simplify(model, ctx.task, None, rt, decide=decider, seed=ctx.seed, on_layer=on_layer)
    path = decider.save()
    ctx.stats.update(human_decisions=str(path), decisions=decider.records, final_candidate=archived[-1],
                     archived_states=archived)
    finalize(ctx)
