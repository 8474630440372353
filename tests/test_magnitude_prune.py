"""natkit.prune.surgery.magnitude_prune: Torch-Pruning's channel pruning, uniform and global."""

import copy

import torch
import torch.nn as nn

from natkit.measure import count_params
from natkit.prune.surgery import magnitude_prune

X = torch.randn(1, 1, 8, 8)
WEAK = torch.arange(0, 16, 2)  # channels 0, 2, ..., 14 of the first layer


def _net(weak=True):
    """Two 16-channel convs; with ``weak``, half the first layer's channels (filters and the second
    layer's matching inputs) are 1000x smaller, so any magnitude criterion ranks them last."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    if weak:
        with torch.no_grad():
            m[0].weight[WEAK] *= 1e-3
            m[0].bias[WEAK] *= 1e-3
            m[2].weight[:, WEAK] *= 1e-3
    return m


def test_uniform_ratio_cuts_every_layer_alike_and_drops_the_weakest_channels():
    m = _net()
    p = magnitude_prune(copy.deepcopy(m), X, ratio=0.5, importance="l1")
    assert (p[0].out_channels, p[2].out_channels) == (8, 8)
    strong = torch.arange(1, 16, 2)
    assert torch.equal(p[0].weight, m[0].weight[strong])


def test_global_ranking_takes_the_weak_layer_first():
    m = _net()
    u = magnitude_prune(copy.deepcopy(m), X, ratio=0.25, importance="l1")
    g = magnitude_prune(copy.deepcopy(m), X, ratio=0.25, importance="l1", global_pruning=True)
    assert (u[0].out_channels, u[2].out_channels) == (12, 12)
    assert (g[0].out_channels, g[2].out_channels) == (8, 16)  # the 8 weak channels are the 25 % of all 32


def test_target_params_is_reached_and_no_layer_is_emptied():
    m = _net()
    target = int(0.2 * count_params(m))
    for glob in (False, True):
        p = magnitude_prune(copy.deepcopy(m), X, target_params=target, importance="l1", global_pruning=glob)
        assert count_params(p) <= target
        assert p[0].out_channels >= 1 and p[2].out_channels >= 1
        assert p(X).shape == (1, 10)


def test_prunes_in_place():
    m = _net(weak=False)
    assert magnitude_prune(m, X, ratio=0.5, importance="l1") is m and m[0].out_channels == 8
