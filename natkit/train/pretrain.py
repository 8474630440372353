"""Source-task pretraining, cached on disk by all of its arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.nn as nn

from natkit.nets import create_model
from natkit.nets.io import load_state_dict_file
from natkit.train.loop import TrainConfig, evaluate, train
from natkit.utils.seed import derive_seed, seed_everything


def cache_dir(override=None) -> Path:
    d = Path(override or os.environ.get("NATKIT_CACHE") or Path.home() / ".cache" / "natkit")
    d.mkdir(parents=True, exist_ok=True)
    return d


# What a cached training result depends on besides its arguments: the code that builds the data, the
# training loop and this cache itself. The network's own modules are added per model.
TRAINING_CODE = ("natkit.core.task", "natkit.data.load", "natkit.data.splits", "natkit.train.loop",
                 "natkit.train.bn", "natkit.train.pretrain", "natkit.utils.seed")


def code_digest(modules=(), model: nn.Module | None = None) -> str:
    """sha256 (16 hex) of the source files of ``modules`` (names or module objects) plus every natkit
    module defining a layer of ``model``: a cached artefact keyed by it is rebuilt after any edit to
    the code that produced it (found through the live modules, so files that move keep working)."""
    import hashlib
    import importlib
    import inspect

    mods = {m if isinstance(m, str) else m.__name__ for m in modules}
    if model is not None:
        mods |= {type(m).__module__ for m in model.modules() if type(m).__module__.startswith("natkit.")}
    h = hashlib.sha256()
    for name in sorted(mods):
        path = inspect.getsourcefile(importlib.import_module(name))
        h.update(name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pretrained(model_name: str, task, *, epochs: float = 2, resolution: int | None = None, seed: int = 0,
               device="cpu", cache=None, train_cfg: TrainConfig | None = None, in_channels: int | None = None,
               **model_kw) -> nn.Module:
    """A ``model_name`` network trained on ``task`` (the source); trained once, then loaded from cache.

    The returned model carries ``natkit_source`` = {config, val_error, path}.
    """
    from safetensors.torch import save_file

    from natkit.train.schedule import scaled

    # a small source set gets the optimisation steps of the stated epochs (no-op at >= 1,150 images)
    cfg = scaled(train_cfg or TrainConfig(epochs=epochs, lr=0.05, batch_size=128), len(task.train))
    in_channels = in_channels or task.in_channels
    seed_everything(seed)
    model = create_model(model_name, num_classes=task.num_classes, in_channels=in_channels, **model_kw)
    key = {"model": model_name, "task": task.spec, "n_train": len(task.train), "classes": task.num_classes,
           "resolution": resolution, "in_channels": in_channels, "seed": seed, "train": cfg.to_dict(),
           "model_kw": model_kw, "code": code_digest(TRAINING_CODE, model)}
    tag = f"{model_name}-{task.name}-{derive_seed(key):08x}"
    path = cache_dir(cache) / f"{tag}.safetensors"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        model.load_state_dict(load_state_dict_file(path))
        meta = json.loads(meta_path.read_text())
    else:
        train(model, task, cfg, device=device, resolution=resolution, channels=in_channels, seed=seed)
        val = evaluate(model, task, "val", device=device, resolution=resolution, channels=in_channels)
        meta = {"config": key, "val_error": val["error"]}
        # atomic, through files of this process's own: concurrent processes (two searches pretraining the
        # same source at once) never read half a file or rename each other's
        tmp = path.parent / f"{path.name}.{os.getpid()}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
        tmp = meta_path.parent / f"{meta_path.name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    model.natkit_source = {**meta, "path": str(path)}
    return model.to(device)
