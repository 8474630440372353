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


def write_npz(path: Path, seed: int = 0) -> dict:
    from natkit.data.load import DEBIAN_FASHION_MNIST, _find_fmnist, _read_idx

    files = _find_fmnist(DEBIAN_FASHION_MNIST)
    if files is None:
        raise SystemExit(f"Fashion-MNIST IDX files not found in {DEBIAN_FASHION_MNIST}")
    x, y = _read_idx(files["test_x"]), _read_idx(files["test_y"])
    rng = np.random.default_rng(seed)
    keep = []
    for c in CLASSES:
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, PER_CLASS_FILE, replace=False))
    keep = np.sort(np.concatenate(keep))
    labels = np.searchsorted(np.array(CLASSES), y[keep])  # 0..K-1, as natkit's npz loader requires
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=x[keep], y=labels.astype(np.int64))
    return {"source": f"{files['test_x']} (Fashion-MNIST test images)", "classes": list(CLASSES),
            "images_in_file": int(len(keep)), "train_per_class": TRAIN_PER_CLASS, "seed": seed}
