"""Task loading: parse the spec, read the data, validate, split, subset."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from natkit.core.task import Split, Task
from natkit.data.splits import as_images, as_labels, per_class, select_classes, stratified_split, take
from natkit.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
_CACHE: dict = {}


def load_task(spec: str, *, root=None, seed: int = 0, samples_per_class: int | None = None,
              classes=None, val_fraction: float = 0.2, test_fraction: float = 0.2,
              image_size: int | None = None) -> Task:
    """Load a named task with seeded train/val/test splits (val is carved from train)."""
    if not isinstance(spec, str) or not spec:
        raise DataError(f"task must be a name or kind:PATH, got {spec!r}")
    if spec.startswith("table:"):  # a published table: space and evaluator in one, no images
        from natkit.data.table import load_table_task

        return load_table_task(spec)
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1:
        raise DataError("val and test fractions must lie in (0, 1)")
    classes = check_classes(classes)
    if samples_per_class is not None and (isinstance(samples_per_class, bool) or
                                          not isinstance(samples_per_class, int) or samples_per_class < 1):
        raise DataError(f"samples per class must be a positive integer, got {samples_per_class!r}")
    key = (spec, str(root), seed, samples_per_class, tuple(classes or ()), val_fraction, test_fraction,
           image_size)
    if key in _CACHE:
        return _CACHE[key]
    if spec == "fashion-mnist":
        (xtr, ytr), (xte, yte), source = _fashion_mnist(root)
        names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Boot"]
    elif spec == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = as_images(d.images, "digits"), torch.from_numpy(d.target.astype(np.int64))
        (xtr, ytr), (xte, yte) = _holdout(x, y, test_fraction, seed)
        source, names = "scikit-learn load_digits (1,797 real 8x8 digits)", [str(i) for i in range(10)]
    elif spec.startswith("npz:"):
        x, y, names, source = _npz(spec[4:])
        (xtr, ytr), (xte, yte) = _holdout(x, y, test_fraction, seed)
    elif spec.startswith("folder:"):
        x, y, names, source = _folder(spec[7:], image_size or 64)
        (xtr, ytr), (xte, yte) = _holdout(x, y, test_fraction, seed)
    else:
        raise DataError(f"unknown task {spec!r}: use fashion-mnist, digits, folder:PATH, npz:PATH or table:PATH")
    train, test = Split(xtr, ytr), Split(xte, yte)
    num_classes = len(names)
    if classes:
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise DataError(f"class {bad[0]} out of range for task {spec} ({num_classes} classes)")
        train, test = select_classes(train, classes), select_classes(test, classes)
        names, num_classes = [names[c] for c in classes], len(classes)
    rest, carved = stratified_split(train.y, val_fraction, seed + 1)
    train, val = take(train, rest), take(train, carved)
    if num_classes < 2:
        raise DataError(f"task {spec} has {num_classes} class{'es' if num_classes != 1 else ''}; a classification "
                        f"task needs at least 2 (its error would be 0 by construction)")
    if samples_per_class is not None:
        train = per_class(train, samples_per_class, seed + 2)
    for name, split in (("train", train), ("val", val), ("test", test)):
        if len(split) == 0:
            raise DataError(f"task {spec}: the {name} split is empty; the task is too small to split")
    missing = sorted(set(range(num_classes)) - set(train.y.unique().tolist()))
    if missing:
        raise DataError(f"task {spec}: the train split has no images of class {missing[0]}; the task is too small")
    if image_size and spec in ("fashion-mnist", "digits") and image_size != train.x.shape[-1]:
        train, val, test = (_resize(s, image_size) for s in (train, val, test))
    task = Task(name=spec.split(":")[0] if ":" in spec else spec, spec=spec, num_classes=num_classes,
                train=train, val=val, test=test, source=source, class_names=list(names))
    _CACHE[key] = task
    return task


def check_classes(classes) -> list[int] | None:
    """A class subset: distinct non-negative integers, at least two."""
    if classes is None:
        return None
    if isinstance(classes, str):
        parts = [c.strip() for c in classes.split(",")]
        if not all(c.lstrip("-").isdigit() for c in parts):
            raise DataError(f"classes must be comma-separated integers, got {classes!r}")
        classes = [int(c) for c in parts]
    classes = list(classes)
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in classes):
        raise DataError(f"classes must be integers, got {classes!r}")
    classes = [int(c) for c in classes]
    dup = [c for i, c in enumerate(classes) if c in classes[:i]]
    if dup:
        raise DataError(f"class {dup[0]} is listed twice in classes {classes}")
    if len(classes) < 2:
        raise DataError(f"classes {classes} select {len(classes)} class; a classification task needs at least 2")
    return classes


def _resize(split: Split, size: int) -> Split:
    x = torch.nn.functional.interpolate(split.x, size=(size, size), mode="bilinear", align_corners=False)
    return Split(x, split.y)


def _holdout(x, y, fraction, seed):
    rest, carved = stratified_split(y, fraction, seed)
    return (x[rest], y[rest]), (x[carved], y[carved])


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        magic, = struct.unpack(">I", data[:4])
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, data[4: 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return arr.reshape(dims)
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise DataError(f"corrupt IDX file {path}: {exc}") from None


def image_shape(spec: str, *, root=None) -> tuple[int, int] | None:
    """(channels, size) of a task's images without loading them, where a file header tells
    (Fashion-MNIST's IDX header); None otherwise (load the task to know)."""
    found = _locate_fmnist(root) if spec == "fashion-mnist" else None
    if found is None:
        return None
    path = found[1]["train_x"]
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            magic, _, rows, cols = struct.unpack(">IIII", f.read(16))
    except (OSError, EOFError, struct.error):
        return None
    return (1, int(cols)) if magic & 0xFF == 3 and rows == cols else None


def _find_fmnist(directory: Path):
    found = {}
    for key, stem in _FMNIST_FILES.items():
        for cand in (directory / f"{stem}.gz", directory / stem, directory / "FashionMNIST" / "raw" / stem):
            if cand.is_file():
                found[key] = cand
                break
    return found if len(found) == 4 else None


def _locate_fmnist(root):
    """(directory, files) of the first place holding Fashion-MNIST's four IDX files, or None: the Debian
    package's folder, then ``root`` and ``$NATKIT_DATA`` (each itself or its ``fashion-mnist`` folder)."""
    candidates = [DEBIAN_FASHION_MNIST]
    for r in (root, os.environ.get("NATKIT_DATA")):
        if r:
            candidates += [Path(r), Path(r) / "fashion-mnist"]
    for directory in candidates:
        files = _find_fmnist(directory)
        if files:
            return directory, files
    return None


def _fashion_mnist(root):
    found = _locate_fmnist(root)
    if found:
        directory, files = found
        arrays = {k: _read_idx(p) for k, p in files.items()}
        return _fmnist_arrays(arrays, f"Fashion-MNIST IDX files in {directory}")
    if root:
        try:  # last resort where a network exists
            from torchvision.datasets import FashionMNIST

            tr = FashionMNIST(root, train=True, download=True)
            te = FashionMNIST(root, train=False, download=True)
            arrays = {"train_x": tr.data.numpy(), "train_y": tr.targets.numpy(),
                      "test_x": te.data.numpy(), "test_y": te.targets.numpy()}
            return _fmnist_arrays(arrays, f"torchvision download into {root}")
        except Exception:
            pass
    raise DataError("Fashion-MNIST not found: install Debian's dataset-fashion-mnist "
                    f"({DEBIAN_FASHION_MNIST}) or pass --data-root / set NATKIT_DATA to a folder with the IDX files")


def _fmnist_arrays(a, source):
    xtr = as_images(a["train_x"], "fashion-mnist train")
    ytr, _ = as_labels(a["train_y"], xtr.shape[0], "fashion-mnist train", 10)
    xte = as_images(a["test_x"], "fashion-mnist test")
    yte, _ = as_labels(a["test_y"], xte.shape[0], "fashion-mnist test", 10)
    return (xtr, ytr), (xte, yte), source


def _npz(path: str):
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise DataError(f"npz file {p} lacks array {missing[0]!r} (needs 'x' and 'y')")
            xa, ya = z["x"], z["y"]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read npz file {p}: {exc}") from None
    x = as_images(xa, f"npz {p}")
    y, k = as_labels(ya, x.shape[0], f"npz {p}")
    return x, y, [str(i) for i in range(k)], f"arrays x, y from {p}"


def _folder(path: str, size: int):
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"image folder not found: {p}")
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in p.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise DataError(f"image folder {p} needs one sub-folder per class (found {len(classes)})")
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp"}
    xs, ys = [], []
    for ci, c in enumerate(classes):
        files = sorted(f for f in (p / c).rglob("*") if f.suffix.lower() in exts)
        if not files:
            raise DataError(f"class folder {p / c} holds no images")
        for f in files:
            xs.append(_read_image(f, size, Image, UnidentifiedImageError))
            ys.append(ci)
    x = as_images(np.stack(xs), f"folder {p}")
    return x, torch.tensor(ys, dtype=torch.int64), classes, f"ImageFolder {p} resized to {size} px"


MAX_IMAGE_PIXELS = 64_000_000  # about 8000 x 8000: larger headers are refused before decoding


def _read_image(f, size, Image, UnidentifiedImageError) -> np.ndarray:
    """One image as size x size RGB, refusing decompression bombs (PIL's limit, also its warning) and
    naming the file in every error."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DataError(f"image {f} claims {w}x{h} pixels, above natkit's decoding limit of "
                                    f"{MAX_IMAGE_PIXELS:,} pixels")
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"image {f} is too large to decode safely: {str(exc).splitlines()[0]}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise DataError(f"corrupt image {f}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") \
            from None
