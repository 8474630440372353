import pytest
import torch
import torchvision

from natkit.measure import count_macs, count_params, measure, measure_latency_ms
from natkit.nets import create_model

# Published multiply-accumulate counts at 224 px (torchvision docs / the papers).
PUBLISHED = [("vgg16", 15.5e9), ("resnet50", 4.1e9), ("densenet121", 2.9e9), ("mobilenet_v3_large", 0.22e9)]


@pytest.mark.parametrize("name, macs", PUBLISHED)
def test_thop_matches_published_macs(name, macs):
    model = getattr(torchvision.models, name)(weights=None)
    measured = count_macs(model, 224, 3)
    # thop also counts BN, activations and pooling; the published numbers leave them out (<= 8% here)
    assert measured == pytest.approx(macs, rel=0.08)


def test_counts_of_a_hand_computable_net():
    m = create_model("vgg", num_classes=2, in_channels=1, cfg=[4], hidden=[], bn=False)
    # conv 3x3, 1->4 on 8x8 (bias) + linear 4->2 (bias)
    assert count_params(m) == 4 * 9 + 4 + 4 * 2 + 2
    macs = count_macs(m, 8, 1)
    assert macs >= 4 * 9 * 64 + 8 and macs < 4 * 9 * 64 + 8 + 4 * 64 * 3
    assert not any("total_ops" in k for k in m.state_dict())  # thop worked on a copy


def test_latency_is_positive_and_restores_threads():
    m = create_model("vgg_tiny", num_classes=2, in_channels=1)
    before = torch.get_num_threads()
    t = measure_latency_ms(m, 16, 1, repeats=5, warmup=1)
    assert t > 0 and torch.get_num_threads() == before
    assert set(measure(m, 16, 1, latency=True)) == {"params", "macs", "latency_ms"}
