"""Deconv back-projection of the kept pre-decision neurons, joins, and the pruning plan."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from natkit.nets import create_model
from natkit.nets.vgg import VGG
from natkit.methods.lda import tracing as T

torch.set_num_threads(1)


def _hand_vgg():
    """conv1x1 (2 ch, w=[2,1]) -> ReLU -> maxpool2 -> fc 2->2 (W=[[1,0],[-1,3]]) -> ReLU -> fc."""
    m = VGG([2, "M"], num_classes=2, in_channels=1, hidden=(2,), bn=False, kernel_sizes=[1])
    with torch.no_grad():
        m.features[0].weight[:] = torch.tensor([2.0, 1.0]).view(2, 1, 1, 1)
        m.features[0].bias.zero_()
        m.classifier[1].weight[:] = torch.tensor([[1.0, 0.0], [-1.0, 3.0]])
        m.classifier[1].bias.zero_()
    x = torch.tensor([[[[1.0, 3.0], [2.0, 0.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])
    return m, x


def test_tracing_matches_hand_computed_example():
    # image 1: conv maps 2x, 1x; pooled [6, 3] from position (0,1); hidden h = relu([6, -6+9]) = [6, 3]
    # keep neuron 1 only: s = [0, 3]; W^T s = [-3, 9]; unpool to (0,1); rectify: ch0 -> 0, ch1 -> 9
    # image 2: pooled [2, 1] at (1,1); h = [2, 1]; s = [0, 1]; W^T s = [-1, 3] -> ch1 gets 3 at (1,1)
    m, x = _hand_vgg()
    r = T.trace(m, [(x, torch.tensor([0, 1]))], np.array([False, True]))
    expected = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 4.5], [0.0, 1.5]]], dtype=torch.float64)
    assert torch.allclose(r.maps["features.0"], expected)
    assert r.utilities["features.0"].tolist() == [0.0, 4.5]
    assert r.utilities["classifier.1"].tolist() == [0.0, 2.0]
    assert r.n_images == 2
    # batching does not change the image average
    r2 = T.trace(m, [(x[:1], None), (x[1:], None)], np.array([False, True]))
    assert torch.allclose(r2.maps["features.0"], expected)


def test_plan_keeps_lda_choice_at_top_and_thresholds_below():
    m, x = _hand_vgg()
    keep = np.array([False, True])
    r = T.trace(m, [(x, None)], keep)
    groups = T.channel_groups(m, x[:1])
    plan = T.describe_plan(m, T.pruning_plan(m, r, groups, keep, eta=0.0))
    # the pre-decision layer keeps exactly the LDA-kept neuron; the dead conv channel goes at any eta
    assert plan == {"classifier.1": 1, "features.0": 1}


def test_bn_is_traversed_as_its_per_channel_scale():
    torch.manual_seed(0)
    m = VGG([3, "M"], num_classes=2, in_channels=1, hidden=(4,), bn=True).eval()
    with torch.no_grad():
        m.features[1].weight[:] = torch.tensor([1.0, -2.0, 0.5])
        m.features[1].running_var[:] = torch.tensor([1.0, 4.0, 0.25])
    x = torch.randn(4, 1, 6, 6)
    keep = np.array([True, False, True, True])
    r = T.trace(m, [(x, None)], keep)
    # measured at the BN output (input of the ReLU): in that space the BN's own scale plays no part
    assert r.measured_at["features.0"] == "features_1"
    # reference: the same back-projection by hand with autograd-free ops
    feats = m.features[:3](x)
    pooled = m.features[3](feats)
    h = m.classifier[2](m.classifier[1](m.classifier[0](m.pool(pooled))))
    s = (h * torch.tensor(keep, dtype=h.dtype)).clamp_min(0)
    back = (s @ m.classifier[1].weight).view(-1, 3, 1, 1)
    # global average pool spreads evenly; maxpool routes to the switches
    spread = back.expand(-1, -1, 3, 3) / 9
    _, idx = nn.functional.max_pool2d(feats, 2, return_indices=True)
    unpooled = nn.functional.max_unpool2d(spread.contiguous(), idx, 2, output_size=feats.shape[-2:])
    expected = unpooled.clamp_min(0).mean(0).double()
    assert torch.allclose(r.maps["features.0"], expected, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet_tiny", "densenet_tiny"])
def test_joins_give_one_utility_per_group_channel(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=3, in_channels=1).eval()
    x = torch.randn(6, 1, 12, 12)
    X, _ = T.predecision_activations(m, [(x, torch.zeros(6))])
    keep = np.ones(X.shape[1], dtype=bool)
    r = T.trace(m, [(x, None)], keep)
    groups = T.channel_groups(m, x[:1])
    gu = T.group_utilities(r, groups)
    for g, u in zip(groups, gu):
        assert u.shape == (g.size,)
        keys = {r.measured_at[n] for n, _, _ in g.members}
        # summed over the distinct measurement points (one per add); per source at a concat
        expected = sum(r.utilities[next(n for n, _, _ in g.members if r.measured_at[n] == k)].numpy()
                       for k in keys)
        assert np.allclose(u, expected)
    if name == "resnet_tiny":
        # the downsampling block's conv2 and its shortcut conv meet at one add: one point, one group
        assert r.measured_at["stages.1.0.conv2"] == r.measured_at["stages.1.0.shortcut.0"]
        shared = [g for g in groups if {"stages.1.0.conv2", "stages.1.0.shortcut.0"} <= {n for n, _, _ in g.members}]
        assert len(shared) == 1
    else:
        # a dense layer's new channels are measured on their own output (its slice of the concat)
        assert r.measured_at["features.1.conv2"] == "features_1_conv2"


def test_higher_eta_prunes_more():
    torch.manual_seed(1)
    m = create_model("vgg_tiny", num_classes=3, in_channels=1).eval()
    x = torch.randn(16, 1, 16, 16)
    keep = np.ones(16, dtype=bool)
    r = T.trace(m, [(x, None)], keep)
    groups = T.channel_groups(m, x[:1])
    counts = [sum(T.describe_plan(m, T.pruning_plan(m, r, groups, keep, eta)).values()) for eta in (0.1, 1.0, 3.0)]
    assert counts[0] <= counts[1] <= counts[2]
    assert counts[2] > counts[0]
    # a layer is never emptied
    plan = T.pruning_plan(m, r, groups, keep, 100.0)
    for mod, idxs in plan.items():
        assert len(idxs) < (mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features)


def test_width_floors_hold_per_group():
    torch.manual_seed(1)
    m = create_model("vgg_tiny", num_classes=3, in_channels=1).eval()
    x = torch.randn(16, 1, 16, 16)
    keep = np.ones(16, dtype=bool)
    r = T.trace(m, [(x, None)], keep)
    groups = T.channel_groups(m, x[:1])
    floors = {g.root: 3 for g in groups}
    plan = T.describe_plan(m, T.pruning_plan(m, r, groups, keep, 100.0, min_channels=floors))
    assert plan.get("features.0", 0) <= 4 - 3 and plan.get("features.4", 0) <= 8 - 3
    assert "classifier.1" not in plan  # the pre-decision layer follows the LDA choice, not the floor
