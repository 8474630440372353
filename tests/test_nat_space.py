"""NAT genome, elastic supernet, subnet extraction and closed-form counting."""

import numpy as np
import pytest
import torch

from natkit.methods.nat.space import N_VAR, NATSpace, count_params_macs
from natkit.methods.nat.ofa_mbv3 import MBV3Config, OFAMobileNetV3

torch.set_num_threads(1)

TINY = MBV3Config(resolutions=(16, 20), stem_width=4, first_block_width=4, stage_widths=(4, 8, 8, 12, 12),
                  feature_mix_width=16, divisor=4, dropout=0.0)


@pytest.fixture(scope="module")
def space():
    return NATSpace(TINY, num_classes=5, in_channels=1)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = OFAMobileNetV3(TINY, 5, 1)
    # non-trivial BN statistics and kernel transforms so equality is not vacuous
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
        for blk in net.blocks:
            for p in blk.dw.transforms.values():
                p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def test_genome_bounds_and_length(space):
    assert space.n_var == N_VAR == 22
    assert space.xu[0] == 1 and space.xu[1] == 1
    # first two layer genes of every stage may not be 0
    for s in range(5):
        assert list(space.xl[2 + 4 * s: 6 + 4 * s]) == [1, 1, 0, 0]


def test_decode_encode_round_trip(space):
    X = space.sample(50, np.random.default_rng(0))
    for x in X:
        assert space.is_valid(x)
        arch = space.decode(x)
        assert arch["genome"] == [int(v) for v in x]
        assert np.array_equal(space.encode(arch), x)


def test_gene_meaning(space):
    x = np.array([1, 0] + [9, 1, 5, 0] + [1, 1, 0, 0] * 4)
    arch = space.decode(x)
    stage0 = [b for b in arch["blocks"] if b["stage"] == 0]
    assert [(b["kernel"], b["expand"]) for b in stage0] == [(7, 6), (3, 3), (5, 4)]
    assert arch["resolution"] == 20 and arch["width_mult"] == 1.0


def test_repair_cuts_stage_after_first_skip(space):
    x = np.array([5, -1] + [0, 3, 0, 7] + [2, 2, 0, 4] + [1, 1, 1, 1] * 3, dtype=float)
    y = space.repair(x)
    assert y[0] == 1 and y[1] == 0  # clipped into bounds
    assert y[2:6] == [1, 3, 0, 0]  # forced depth >= 2, nothing kept after a skip
    assert y[6:10] == [2, 2, 0, 0]
    assert space.is_valid(y)
    assert not space.is_valid(x.astype(int))


def test_in_place_and_extracted_logits_identical(space, supernet):
    rng = np.random.default_rng(1)
    X = np.vstack([space.extremes(), space.sample(6, rng)])
    for x in X:
        arch = space.decode(x)
        supernet.set_active(arch)
        sub = supernet.extract(arch).eval()
        inp = torch.randn(3, 1, arch["resolution"], arch["resolution"])
        with torch.no_grad():
            a, b = supernet(inp), sub(inp)
        assert a.shape == (3, 5)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_kernel_transform_changes_small_kernels_only(supernet):
    dw = supernet.blocks[0].dw
    w7 = dw.active_weight(4, 7)
    assert torch.equal(w7, dw.weight[:4])
    w3 = dw.active_weight(4, 3)
    crop = dw.weight[:4, :, 2:5, 2:5]
    assert w3.shape == crop.shape and not torch.allclose(w3, crop)


def test_closed_form_counts_equal_counted_macs(space, supernet):
    """Closed form == conv + linear MACs counted on the extracted subnet and on the supernet in place
    (where the layers are functional calls on sliced weights)."""
    from natkit.measure import count_macs, count_params

    rng = np.random.default_rng(2)
    for x in np.vstack([space.extremes(), space.sample(10, rng)]):
        arch = space.decode(x)
        sub = supernet.extract(arch)
        counts = count_params_macs(arch)
        assert counts["macs"] == count_macs(sub, arch["resolution"], 1)
        assert counts["params"] == count_params(sub)
        supernet.set_active(arch)
        assert count_macs(supernet, arch["resolution"], 1) == counts["macs"]


def test_extracted_subnet_rebuilds_from_arch(space, supernet):
    from natkit.nets import build_from_arch

    arch = space.decode(space.sample(1, np.random.default_rng(3))[0])
    sub = supernet.extract(arch).eval()
    rebuilt = build_from_arch(sub.natkit_arch)
    rebuilt.load_state_dict(sub.state_dict())
    inp = torch.randn(2, 1, arch["resolution"], arch["resolution"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(inp), sub(inp))


def test_dynamic_bn_updates_running_stats_of_slice_only():
    net = OFAMobileNetV3(TINY, 5, 1).train()
    space = NATSpace(TINY, num_classes=5, in_channels=1)
    small = space.decode(space.extremes()[1])
    bn = net.blocks[0].expand_bn.bn
    before = bn.running_mean.clone()
    net.set_active(small)
    net(torch.randn(4, 1, 16, 16))
    c = small["blocks"][0]["mid"]
    assert c < bn.num_features
    assert not torch.equal(bn.running_mean[:c], before[:c])
    assert torch.equal(bn.running_mean[c:], before[c:])


def test_sort_channels_keeps_largest_function():
    torch.manual_seed(0)
    net = OFAMobileNetV3(TINY, 5, 1).eval()
    inp = torch.randn(2, 1, 20, 20)
    with torch.no_grad():
        before = net(inp)
        net.sort_channels()
        after = net(inp)
    torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-5)
    imp = net.blocks[0].project.weight.abs().sum((0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])


def test_subnet_too_big_for_supernet_rejected(space):
    from natkit.errors import ConfigError

    net = OFAMobileNetV3(TINY, 5, 1)
    arch = space.decode(space.extremes()[0])
    arch["stem"] += 4
    with pytest.raises(ConfigError):
        net.set_active(arch)


def test_imagenet_space_subnet_runs_and_counts_equal_counted_macs():
    """The ImageNet-scale instance is never trained here; a random subnet at its smallest resolution
    still runs on CPU (batch 1), in place and extracted alike, and its closed-form counts equal the
    conv + linear count of the extracted subnet."""
    from natkit.measure import count_macs, count_params

    from natkit.methods.nat.method import load_nat_space

    config, _, _, _ = load_nat_space("nat_imagenet")
    torch.manual_seed(0)
    net = OFAMobileNetV3(config, 1000, 3).eval()
    space = NATSpace(config, num_classes=1000, in_channels=3)
    x = space.sample(1, np.random.default_rng(4))[0]
    x[0] = 0  # resolution index 0: the smallest resolution
    arch = space.decode(space.repair(x))
    assert arch["resolution"] == min(config.resolutions) == 192
    sub = net.extract(arch).eval()
    inp = torch.randn(1, 3, 192, 192)
    net.set_active(arch)
    with torch.no_grad():
        out = sub(inp)
        torch.testing.assert_close(net(inp), out, rtol=1e-4, atol=1e-4)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    counts = count_params_macs(arch)
    assert counts["macs"] == count_macs(sub, 192, 3) and counts["params"] == count_params(sub)
    assert 100e6 < counts["macs"] < 1e9  # ImageNet-scale counts (NAT's mobile budget is 600e6)
