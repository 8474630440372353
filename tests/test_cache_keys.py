"""Cached pretraining results are keyed by the code that produced them."""

import importlib
import sys

from natkit.nets import create_model
from natkit.train.pretrain import TRAINING_CODE, code_digest


def test_digest_changes_when_a_source_file_changes(tmp_path, monkeypatch):
    mod = tmp_path / "natkit_probe_mod.py"
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("natkit_probe_mod")
    try:
        before = code_digest(["natkit_probe_mod"])
        assert code_digest(["natkit_probe_mod"]) == before  # stable
        mod.write_text("X = 2\n")
        assert code_digest(["natkit_probe_mod"]) != before
    finally:
        sys.modules.pop("natkit_probe_mod", None)


def test_digest_covers_the_training_code_and_the_models_own_modules():
    vgg = create_model("vgg_tiny", num_classes=3, in_channels=1)
    resnet = create_model("resnet_tiny", num_classes=3, in_channels=1)
    assert code_digest(TRAINING_CODE, vgg) != code_digest(TRAINING_CODE, resnet)  # different builder files
    assert code_digest(TRAINING_CODE, vgg) != code_digest((), vgg)
    assert code_digest(TRAINING_CODE, vgg) == code_digest(TRAINING_CODE, create_model("vgg_tiny", num_classes=5))


def test_pretraining_cache_is_rebuilt_after_a_code_change(digits, tmp_path, monkeypatch):
    from natkit.train import TrainConfig, pretrained
    from natkit.train import pretrain as P

    cfg = TrainConfig(epochs=1, batch_size=64, max_batches=1)
    m1 = pretrained("vgg_tiny", digits, train_cfg=cfg, cache=tmp_path)
    m2 = pretrained("vgg_tiny", digits, train_cfg=cfg, cache=tmp_path)
    assert m1.natkit_source["path"] == m2.natkit_source["path"]
    monkeypatch.setattr(P, "code_digest", lambda *a, **k: "edited-code")
    m3 = pretrained("vgg_tiny", digits, train_cfg=cfg, cache=tmp_path)
    assert m3.natkit_source["path"] != m1.natkit_source["path"]
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
