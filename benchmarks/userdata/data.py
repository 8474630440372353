"""The benchmark's task: a Fashion-MNIST class subset written as an npz file, as a user would bring it.

Images come from the Fashion-MNIST *test* IDX files, which natkit's source pretraining never trains on
(it loads the train files), so the target's images are unseen by every source network. The npz holds
``PER_CLASS_FILE`` images per class; natkit carves its test (20%) and val (20% of the rest) splits from
it, and ``--samples-per-class 20`` keeps 20 training images per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = (0, 2, 5, 8)  # T-shirt, Pullover, Sandal, Bag
PER_CLASS_FILE = 100
TRAIN_PER_CLASS = 20


def fmnist_subset(split: str, classes, per_class: int, rng) -> tuple:
    """``per_class`` images of each of ``classes`` from Fashion-MNIST's ``split`` IDX files ("train" or
    "test"), labels renumbered 0..K-1 as natkit's npz loader requires: ``(images, labels, source path)``."""
    from natkit.data.load import DEBIAN_FASHION_MNIST, _locate_fmnist, _read_idx

    found = _locate_fmnist(None)
    if found is None:
        raise SystemExit(f"Fashion-MNIST IDX files not found ({DEBIAN_FASHION_MNIST} or $NATKIT_DATA)")
    files = found[1]
    x, y = _read_idx(files[f"{split}_x"]), _read_idx(files[f"{split}_y"])
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes]))
    labels = np.searchsorted(np.array(classes), y[keep]).astype(np.int64)
    return x[keep], labels, files[f"{split}_x"]


def write_npz(path: Path, seed: int = 0) -> dict:
    x, y, source = fmnist_subset("test", CLASSES, PER_CLASS_FILE, np.random.default_rng(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=x, y=y)
    return {"source": f"{source} (Fashion-MNIST test images)", "classes": list(CLASSES),
            "images_in_file": int(len(y)), "train_per_class": TRAIN_PER_CLASS, "seed": seed}
