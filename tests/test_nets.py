import pytest
import torch

from natkit.errors import ConfigError, WeightsError
from natkit.nets import build_from_arch, create_model, list_models, load_model, save_model
from natkit.measure import count_params
from natkit.prune.surgery import prunable_layers, remove_channels

SMALL = ["vgg_small", "vgg_tiny", "resnet_small", "resnet_tiny", "resnet_tiny_bottleneck", "densenet_small",
         "densenet_tiny"]


@pytest.mark.parametrize("name", SMALL)
def test_small_models_run_at_28_and_32_px(name):
    m = create_model(name, num_classes=7, in_channels=1).eval()
    for r in (28, 32):
        assert m(torch.randn(2, 1, r, r)).shape == (2, 7)
    assert build_from_arch(m.natkit_arch).natkit_arch == m.natkit_arch


def test_widths_are_arguments():
    m = create_model("vgg", num_classes=3, in_channels=1, cfg=[5, "M", 7], hidden=[9])
    convs = [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert convs == [5, 7] and m.classifier[1].out_features == 9
    r = create_model("resnet", num_classes=3, widths=[3, 5], layers=[1, 2], block_widths=[2, 4, 6])
    mids = [b.conv1.out_channels for s in r.stages for b in s]
    assert mids == [2, 4, 6] and r.fc.in_features == 5
    d = create_model("densenet", num_classes=3, growth_rate=[2, 5], block_config=[1, 1], init_width=4)
    assert d.classifier.in_features == int((4 + 2) * 0.5) + 5
    with pytest.raises(ConfigError):
        create_model("vgg", num_classes=3, cfg=[-4, "M"])
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("alexnet", num_classes=3)


@pytest.mark.parametrize("name", ["vgg_tiny", "resnet_tiny", "densenet_tiny"])
def test_pruned_model_saves_and_reloads_identically(tmp_path, name):
    m = create_model(name, num_classes=4, in_channels=1).eval()
    x = torch.randn(3, 1, 16, 16)
    layers = prunable_layers(m, x[:1])
    remove_channels(m, {layers[0]: [0]}, x[:1])
    assert count_params(m) < count_params(create_model(name, num_classes=4, in_channels=1))
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m").eval()
    assert torch.allclose(back(x), m(x), atol=1e-6)


def test_bad_weight_files(tmp_path):
    m = create_model("vgg_tiny", num_classes=4, in_channels=1)
    save_model(m, tmp_path / "ok")
    other = create_model("resnet_tiny", num_classes=4, in_channels=1)
    save_model(other, tmp_path / "other")
    (tmp_path / "ok" / "weights.safetensors").write_bytes((tmp_path / "other" / "weights.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="do not fit"):
        load_model(tmp_path / "ok")
    (tmp_path / "ok" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot read"):
        load_model(tmp_path / "ok")
    with pytest.raises(WeightsError, match="not found"):
        create_model("tv_resnet50", num_classes=3, weights=str(tmp_path / "missing.pth"))


def test_torchvision_weights_file_is_loaded_safely(tmp_path):
    import torchvision

    ref = torchvision.models.resnet50(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r50.pth")
    m = create_model("tv_resnet50", num_classes=5, weights=str(tmp_path / "r50.pth"))
    assert torch.equal(m.layer1[0].conv1.weight, ref.layer1[0].conv1.weight) and m.fc.out_features == 5
    assert "tv_vgg16" in list_models() and "tv_densenet121" in list_models()


def test_frozen_layers_are_pruned_and_stay_frozen():
    m = create_model("vgg_small", num_classes=4, in_channels=1)
    for p in m.features.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 1, 28, 28)
    first = m.features[0]
    remove_channels(m, {first: [0, 1]}, x)
    assert m.features[0].out_channels == 14 and m.features[3].in_channels == 14
    assert not any(p.requires_grad for p in m.features.parameters())
    assert all(p.requires_grad for p in m.classifier.parameters())


def test_export_reloads_a_method_family_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    # arch.json names the module that defines the family; reloading imports that module and no other method
    code = ("import sys\n"
            "from natkit.errors import ConfigError\n"
            "from natkit.nets.registry import build_from_arch, models\n"
            "assert 'tascnet_net' not in models\n"
            "try:\n"
            "    build_from_arch({'name': 'tascnet_net', 'module': 'natkit.methods.tascnet.layers',\n"
            "                     'kwargs': {'num_classes': 3}})\n"
            "except ConfigError as exc:\n"
            "    assert 'base' in str(exc), exc\n"
            "print('tascnet_net' in models and 'natkit.methods.nat' not in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
