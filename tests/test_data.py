import numpy as np
import pytest
import torch

from natkit.data import load_task
from natkit.errors import DataError


def test_digits_splits_are_disjoint_stratified_and_seeded(digits):
    assert digits.num_classes == 10 and digits.in_channels == 1
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == 1797 and min(sizes) > 250
    assert float(digits.train.x.max()) <= 1.0 and float(digits.train.x.min()) >= 0.0
    again = load_task("digits", seed=0, val_fraction=0.2)
    assert torch.equal(again.val.y, digits.val.y)
    other = load_task("digits", seed=1)
    assert not torch.equal(other.val.x, digits.val.x)
    for split in (digits.train, digits.val, digits.test):  # every class in every split
        assert len(torch.unique(split.y)) == 10


def test_batches_resize_adapt_channels_and_normalise(digits):
    x, y = next(digits.batches("train", 32, resolution=28, channels=3))
    assert x.shape == (32, 3, 28, 28) and y.shape == (32,)
    full = torch.cat([b for b, _ in digits.batches("train", 512)])
    assert abs(float(full.mean())) < 1e-3 and abs(float(full.std()) - 1) < 0.05


def test_samples_per_class_and_class_subset():
    t = load_task("digits", samples_per_class=5, classes=[3, 7])
    assert t.num_classes == 2 and len(t.train) == 10
    assert set(t.train.y.tolist()) == {0, 1} and t.class_names == ["3", "7"]


def test_fashion_mnist_from_debian_package():
    t = load_task("fashion-mnist", samples_per_class=10)
    assert "fashion-mnist" in t.source.lower() or "Fashion-MNIST" in t.source
    assert t.image_size == 28 and len(t.test) == 10000 and len(t.train) == 100


def _npz(tmp_path, **arrays):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    return f"npz:{p}"


def test_npz_task_loads(tmp_path):
    rng = np.random.default_rng(0)
    spec = _npz(tmp_path, x=rng.integers(0, 255, (60, 12, 12, 3)).astype(np.uint8), y=np.arange(60) % 3)
    t = load_task(spec)
    assert t.in_channels == 3 and t.num_classes == 3 and t.image_size == 12


@pytest.mark.parametrize("arrays, needle", [
    (dict(x=np.zeros((10, 4)), y=np.zeros(10, int)), "rank"),
    (dict(x=np.zeros((10, 8, 8)), y=np.array([0, 1, 2, 3, -1, 0, 1, 2, 3, 0])), "out of range"),
    (dict(x=np.zeros((10, 8, 8)), y=np.array([0, 2] * 5)), "class 1 has no samples"),
    (dict(x=np.zeros((10, 8, 8))), "'y'"),
    (dict(x=np.zeros((10, 8, 8)), y=np.zeros(9, int)), "vector of 10"),
])
def test_bad_npz_is_a_clear_error(tmp_path, arrays, needle):
    with pytest.raises(DataError, match=needle):
        load_task(_npz(tmp_path, **arrays))


def test_image_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(6):
            Image.new("RGB", (20, 30), (i * 40, 10, 200 if c == "cat" else 0)).save(tmp_path / c / f"{i}.png")
    t = load_task(f"folder:{tmp_path}", image_size=16)
    assert t.class_names == ["cat", "dog"] and t.image_size == 16 and t.in_channels == 3
    (tmp_path / "cat" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="corrupt image"):
        load_task(f"folder:{tmp_path}", image_size=17)


def test_missing_paths_and_unknown_task(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_task(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="unknown task"):
        load_task("imagenet-22k")
