"""KELS/WELS masks, the generation step (reset hypothesis) and the slim network."""

import math

import pytest
import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.methods.ke.split import (extract_slim, kels_masks, reset_hypothesis, slim_state_dict, wels_masks,
                                     zero_reset)
from natkit.nets import create_model, load_model, save_model

torch.set_num_threads(1)


def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model


def _model(name, seed=0, **kw):
    torch.manual_seed(seed)
    return _randomise_bn(create_model(name, num_classes=5, in_channels=1, **kw), seed)


def test_kels_vgg_masks_have_the_right_shapes_and_shares():
    s = 0.5
    model = _model("vgg_small")
    masks = kels_masks(model, s, resolution=16)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert set(masks.layers) == {n for n, _ in convs + linears}
    for n, m in convs + linears:
        assert masks.layers[n].weight.shape == m.weight.shape
    # first conv: first ceil(s*C_out) filters, every input channel
    n0, c0 = convs[0]
    k0 = math.ceil(s * c0.out_channels)
    w0 = masks.layers[n0].weight
    assert w0[:k0].all() and not w0[k0:].any()
    # inner conv: first-k filters x first-k inputs, share (k_out/C_out)(k_in/C_in)
    n1, c1 = convs[1]
    k_out, k_in = math.ceil(s * c1.out_channels), math.ceil(s * c1.in_channels)
    w1 = masks.layers[n1].weight
    assert w1[:k_out, :k_in].all() and not w1[k_out:].any() and not w1[:, k_in:].any()
    assert masks.layers[n1].fit_share() == pytest.approx(k_out * k_in / (c1.out_channels * c1.in_channels))
    # hidden linear is split both ways, the classifier keeps all outputs and masks only inputs
    (nh, hid), (nf, fin) = linears
    assert masks.layers[nh].weight.sum() == math.ceil(s * hid.out_features) * math.ceil(s * hid.in_features)
    wf = masks.layers[nf].weight
    kf = math.ceil(s * fin.in_features)
    assert wf[:, :kf].all() and not wf[:, kf:].any()
    assert masks.layers[nf].bias.all()
    assert 0.2 < masks.fit_share() < 0.35  # ~s^2 inside, ~s at both ends


def test_kels_densenet_splits_each_concatenated_source():
    s = 0.5
    model = _model("densenet_tiny", growth_rate=4, block_config=(3,), init_width=6)
    masks = kels_masks(model, s, resolution=8)
    third = model.features[3]  # its input is [stem 6 | layer1 4 | layer2 4]
    inputs = masks.layers[_name(model, third.conv1)].weight[0, :, 0, 0]
    expected = [True] * 3 + [False] * 3 + [True] * 2 + [False] * 2 + [True] * 2 + [False] * 2
    assert inputs.tolist() == expected
    assert masks.norms[_name(model, third.norm1)].tolist() == [0, 1, 2, 6, 7, 10, 11]


def test_kels_residual_join_stays_aligned_and_first_conv_keeps_inputs():
    model = _model("resnet_tiny")
    masks = kels_masks(model, 0.5, resolution=8)
    block = model.stages[1][0]
    out2 = masks.layers[_name(model, block.conv2)].out_idx
    out_sc = masks.layers[_name(model, block.shortcut[0])].out_idx
    assert out2.tolist() == out_sc.tolist() == [0, 1, 2, 3]
    stem = masks.layers[_name(model, model.stem[0])]
    assert stem.in_idx.tolist() == [0]


def test_wels_share_is_the_split_rate_and_seeded():
    model = _model("vgg_small")
    a = wels_masks(model, 0.3, generator=torch.Generator().manual_seed(1))
    b = wels_masks(model, 0.3, generator=torch.Generator().manual_seed(1))
    assert a.fit_share() == pytest.approx(0.3, abs=0.02)
    assert all(torch.equal(a.layers[k].weight, b.layers[k].weight) for k in a.layers)
    with pytest.raises(ConfigError):
        slim_state_dict(model, a)


def test_reset_keeps_fit_weights_and_draws_new_reset_weights():
    model = _model("resnet_tiny")
    masks = kels_masks(model, 0.5, resolution=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reset_hypothesis(model, masks, generator=torch.Generator().manual_seed(3))
    after = model.state_dict()
    modules = dict(model.named_modules())
    for name, split in masks.layers.items():
        w0, w1 = before[f"{name}.weight"], after[f"{name}.weight"]
        assert torch.equal(w0[split.weight], w1[split.weight])
        reset = ~split.weight
        if reset.any():
            assert (w0[reset] != w1[reset]).all()
            bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(modules[name].weight)[0])
            assert w1[reset].abs().max() <= bound + 1e-6  # Kaiming-uniform a=sqrt(5)
    for key in before:  # batch norm is not reset
        if ".bn" in key or "stem.1" in key or "shortcut.1" in key:
            assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("name,kw,res", [
    ("vgg_small", {}, 16),
    ("resnet_small", {"layers": (1, 1, 1)}, 16),
    ("resnet_tiny_bottleneck", {}, 8),
    ("densenet_tiny", {}, 8),
    ("densenet_small", {"block_config": (2, 2, 2)}, 16),
])
@pytest.mark.parametrize("s", [0.3, 0.5])
def test_slim_logits_equal_dense_with_reset_zeroed(name, kw, res, s):
    model = _model(name, **kw)
    masks = kels_masks(model, s, resolution=res)
    slim, zeroed = extract_slim(model, masks), zero_reset(model, masks)
    x = torch.randn(6, 1, res, res, generator=torch.Generator().manual_seed(4))
    model.eval(), slim.eval(), zeroed.eval()
    with torch.no_grad():
        dense_out, slim_out, zero_out = model(x), slim(x), zeroed(x)
    assert torch.allclose(slim_out, zero_out, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(dense_out, zero_out, atol=1e-3)  # the reset hypothesis did matter
    n_dense = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in slim.parameters()) < n_dense


def test_slim_network_exports_and_reloads(tmp_path):
    model = _model("densenet_tiny")
    masks = kels_masks(model, 0.5, resolution=8)
    slim = extract_slim(model, masks).eval()
    save_model(slim, tmp_path / "slim")
    again = load_model(tmp_path / "slim").eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(slim(x), again(x), atol=1e-6)


def test_bad_split_rate_is_a_config_error():
    with pytest.raises(ConfigError):
        kels_masks(_model("vgg_tiny"), 0.0)
    with pytest.raises(ConfigError):
        kels_masks(_model("vgg_tiny"), 1.5)


def _name(model, module):
    return next(n for n, m in model.named_modules() if m is module)
