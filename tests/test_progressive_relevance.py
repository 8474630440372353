"""Relevance criteria on hand-built networks whose kernel ranking is known by construction."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from natkit.errors import ConfigError
from natkit.methods.progressive import relevance as R

torch.set_num_threads(1)


def _net(weights, biases, *, bn=False, head=None):
    """1-channel input -> 1x1 conv with the given per-kernel weight/bias -> (BN) -> ReLU -> GAP -> head."""
    c = len(weights)
    conv = nn.Conv2d(1, c, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(c, 1, 1, 1))
        conv.bias.copy_(torch.tensor(biases, dtype=torch.float32))
    layers = [conv] + ([nn.BatchNorm2d(c)] if bn else []) + [nn.ReLU(inplace=True)]
    head = head if head is not None else nn.Linear(c, 2)
    model = nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    return model, conv


def _uniform_batches(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    return R.as_batches(x, y, 32)


def test_registry_lists_all_documented_criteria():
    assert {"mean_abs", "apoz", "discriminative", "loss_increase", "l1"} <= set(R.list_criteria())
    with pytest.raises(ConfigError, match="nope"):
        R.get_criterion("nope")


def test_mean_abs_ranks_by_activation_scale():
    model, conv = _net([0.5, 3.0, 0.1, 1.0], [0, 0, 0, 0])
    scores = R.score_kernels(model, conv, _uniform_batches(), "mean_abs")
    assert list(np.argsort(scores)) == [2, 0, 3, 1]
    assert R.lowest_ranked(scores, 2) == [0, 2]


def test_apoz_ranks_by_share_of_zeros():
    # x ~ U(0,1): kernel with bias -b is positive on a share (1-b) of positions
    model, conv = _net([1, 1, 1, 1], [-0.2, -0.9, -0.5, 0.0])
    scores = R.score_kernels(model, conv, _uniform_batches(n=256), "apoz")
    assert list(np.argsort(scores)) == [1, 2, 0, 3]
    assert scores[1] == pytest.approx(0.1, abs=0.05)


def test_discriminative_prefers_class_dependent_kernel_over_loud_noise():
    g = torch.Generator().manual_seed(1)
    n = 200
    y = torch.randint(0, 2, (n,), generator=g)
    signal = y.float().view(n, 1, 1, 1) * 0.5 + 0.05 * torch.randn(n, 1, 6, 6, generator=g)
    noise = 5.0 * torch.rand(n, 1, 6, 6, generator=g)
    x = torch.cat([signal, noise], dim=1)
    conv = nn.Conv2d(2, 3, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(1.0)  # keeps the ReLU linear on these inputs
        conv.weight[0, 0] = 1.0  # class signal, small
        conv.weight[1, 1] = 1.0  # loud, class-free
        conv.weight[2, 0] = 0.3
        conv.weight[2, 1] = 1.0  # some signal drowned in noise
    model = nn.Sequential(nn.Sequential(conv, nn.ReLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    batches = R.as_batches(x, y, 64)
    disc = R.score_kernels(model, conv, batches, "discriminative")
    assert list(np.argsort(disc)) == [1, 2, 0]
    # the magnitude criterion ranks the other way round on the same network: the criteria differ
    loud = R.score_kernels(model, conv, batches, "mean_abs")
    assert loud[1] > loud[0]


def test_fisher_ratio_matches_hand_computation():
    f = np.array([[1.0], [3.0], [5.0], [9.0]])
    y = np.array([0, 0, 1, 1])
    # class means 2 and 7, grand mean 4.5: between = 2*6.25*2 = 25, within = 1+1+4+4 = 10
    assert R.fisher_ratio(f, y)[0] == pytest.approx(2.5)


def test_loss_increase_finds_the_kernel_the_head_relies_on():
    head = nn.Linear(3, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[4.0, 0.0, 0.5], [-4.0, 0.0, -0.5]]))
        head.bias.zero_()
    model, conv = _net([1.0, 1.0, 1.0], [0, 0, 0], head=head)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(64, 1, 6, 6, generator=g)
    y = torch.zeros(64, dtype=torch.long)  # head votes class 0 through kernels 0 and 2
    scores = R.score_kernels(model, conv, R.as_batches(x, y), "loss_increase")
    assert list(np.argsort(scores)) == [1, 2, 0]
    assert scores[1] == pytest.approx(0.0, abs=1e-6)


def test_activation_is_read_after_bn_and_relu():
    model, conv = _net([1.0, -1.0], [0, 0], bn=True)
    point, relu = R.activation_point(model, conv)
    assert isinstance(point, nn.ReLU) and not relu
    scores = R.score_kernels(model, conv, _uniform_batches(), "apoz")
    assert scores[1] < 0.6 < scores[0]


def test_l1_is_data_free_and_scoring_restores_train_mode():
    model, conv = _net([0.5, -3.0, 0.1], [0, 0, 0])
    model.train()
    scores = R.score_kernels(model, conv, [], "l1")
    assert scores == pytest.approx([0.5, 3.0, 0.1])
    assert model.training
    with pytest.raises(ConfigError):
        R.score_kernels(model, conv, [], "mean_abs")


def test_share_keeps_at_least_one_kernel():
    assert R.n_to_eliminate(16, 0.5) == 8
    assert R.n_to_eliminate(4, 1.0) == 3
    assert R.n_to_eliminate(10, 0.0) == 0
    with pytest.raises(ConfigError):
        R.n_to_eliminate(10, 1.5)


def test_loss_increase_suffix_shortcut_matches_full_forward():
    from natkit.nets import create_model

    torch.manual_seed(0)
    model = create_model("vgg", num_classes=3, in_channels=1, cfg=[4, "M", 6, 6, "M"], hidden=(8,))
    model.eval()
    g = torch.Generator().manual_seed(1)
    batches = R.as_batches(torch.rand(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g), 16)
    conv = model.features[4]
    fast = R.score_kernels(model, conv, batches, "loss_increase")
    wrapped = nn.Sequential(model)  # not a VGG at the top: takes the full-forward path
    slow = R.score_kernels(wrapped, conv, batches, "loss_increase")
    assert np.allclose(fast, slow, atol=1e-5) and np.ptp(fast) > 0
