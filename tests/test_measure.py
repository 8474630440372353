import pytest
import torch
import torch.nn as nn
import torchvision

from natkit.measure import count_macs, count_macs_thop, count_params, measure, measure_latency_ms
from natkit.nets import create_model

# torchvision publishes each model's multiply-accumulates at 224 px in its weights' metadata
# (``meta["_ops"]``, labelled GFLOPS but counting conv + linear MACs); reading it needs no download.
TORCHVISION = [("vgg16", 15.47), ("resnet50", 4.089), ("densenet121", 2.834),
               ("mobilenet_v3_large", 0.217), ("mobilenet_v3_small", 0.057), ("resnet18", 1.814)]


@pytest.mark.parametrize("name, published_g", TORCHVISION)
def test_macs_match_torchvision_published_counts(name, published_g):
    meta_g = torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]
    assert meta_g == pytest.approx(published_g, rel=1e-3)  # the installed torchvision states these numbers
    model = getattr(torchvision.models, name)(weights=None)
    assert count_macs(model, 224, 3) == pytest.approx(meta_g * 1e9, rel=0.01)


def test_thop_total_sits_above_the_convention():
    model = torchvision.models.resnet18(weights=None)
    ours, theirs = count_macs(model, 224, 3), count_macs_thop(model, 224, 3)
    assert theirs > ours * 1.005  # thop adds batch norm, activations and pooling


def test_counts_of_a_hand_computable_net():
    m = create_model("vgg", num_classes=2, in_channels=1, cfg=[4], hidden=[], bn=False)
    # conv 3x3, 1->4 on 8x8 (bias) + linear 4->2 (bias); biases, ReLU and pooling are free
    assert count_params(m) == 4 * 9 + 4 + 4 * 2 + 2
    assert count_macs(m, 8, 1) == 4 * 9 * 64 + 4 * 2


def test_grouped_and_depthwise_convolutions():
    net = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(16),
                        nn.Conv2d(16, 16, 5, stride=2, padding=2, groups=16), nn.Flatten(), nn.Linear(16 * 25, 3))
    grouped = 16 * 10 * 10 * (8 // 4) * 9
    depthwise = 16 * 5 * 5 * 1 * 25
    assert count_macs(net, 10, 8) == grouped + depthwise + 16 * 25 * 3


def test_counting_changes_no_state():
    m = create_model("vgg_tiny", num_classes=2, in_channels=1).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    count_macs(m, 16, 1)
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_latency_is_positive_and_restores_threads():
    m = create_model("vgg_tiny", num_classes=2, in_channels=1)
    before = torch.get_num_threads()
    t = measure_latency_ms(m, 16, 1, repeats=5, warmup=1)
    assert t > 0 and torch.get_num_threads() == before
    assert set(measure(m, 16, 1, latency=True)) == {"params", "macs", "latency_ms"}


def test_onnxruntime_latency_follows_the_setting(monkeypatch):
    from natkit.measure import latency as L

    m = create_model("vgg_tiny", num_classes=2, in_channels=1)
    seen = {}
    real = L.onnx_file_latency_ms

    def spy(path, **kw):
        seen.update(kw)
        return real(path, **kw)

    monkeypatch.setattr(L, "onnx_file_latency_ms", spy)
    setting = L.HardwareSetting(runtime="onnxruntime", threads=2, warmup=1, repeats=3)
    t = L.measure_latency_ms(m, 16, 1, setting=setting)
    assert t > 0 and seen == {"threads": 2, "warmup": 1, "repeats": 3}


def test_hardware_setting_travels_in_the_environment_and_feeds_the_eval_key(monkeypatch):
    from natkit.core.problem import make_eval_key
    from natkit.measure import latency as L

    monkeypatch.delenv(L.ENV, raising=False)
    plain = make_eval_key("digits", "width", {"a": 1})
    L.configure(L.HardwareSetting(runtime="onnxruntime", threads=1))
    try:
        assert L.current_setting().runtime == "onnxruntime"
        assert make_eval_key("digits", "width", {"a": 1}) != plain
    finally:
        L.configure(None)
    assert L.current_setting().is_default() and make_eval_key("digits", "width", {"a": 1}) == plain


def test_hardware_table_in_a_budget_toml(tmp_path):
    from natkit.core.budget import load_budget, load_hardware
    from natkit.errors import ConfigError

    (tmp_path / "dev.json").write_text("{}")
    toml = tmp_path / "b.toml"
    toml.write_text('[budget]\nlatency_ms = 5\n\n[hardware]\ntable = "dev.json"\n')
    hw = load_hardware(str(toml))
    assert hw.runtime == "table" and hw.table == str((tmp_path / "dev.json").resolve())
    assert load_budget(str(toml)).limits == {"latency_ms": 5}
    toml.write_text('[hardware]\nruntime = "onnxruntime"\nthreads = 2\n')
    assert load_hardware(str(toml)).threads == 2 and load_budget(str(toml)).limits == {}
    for bad in ('runtime = "tflite"', "threads = 0", 'table = "missing.json"', "cores = 2"):
        toml.write_text(f"[hardware]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_hardware(str(toml))
