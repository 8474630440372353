import pytest
import torch

from natkit.errors import DivergedError
from natkit.nets import create_model
from natkit.train import TrainConfig, calibration_batches, evaluate, recalibrate_bn, train


def test_training_learns_digits(digits):
    torch.manual_seed(0)
    m = create_model("vgg", num_classes=10, in_channels=1, cfg=[8, "M", 16, "M"], hidden=[32])
    before = evaluate(m, digits, "val", resolution=16)["error"]
    losses = train(m, digits, TrainConfig(epochs=3, lr=0.1), resolution=16, seed=0)
    after = evaluate(m, digits, "val", resolution=16)["error"]
    assert losses[-1] < losses[0] and after < before - 0.3


def test_same_seed_same_weights_and_only_given_params_change(digits):
    def run(seed):
        torch.manual_seed(123)
        m = create_model("vgg_tiny", num_classes=10, in_channels=1)
        train(m, digits, TrainConfig(epochs=1, max_batches=5), resolution=12, seed=seed)
        return m

    a, b, c = run(0), run(0), run(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    m = create_model("vgg_tiny", num_classes=10, in_channels=1)
    frozen = m.features[0].weight.detach().clone()
    train(m, digits, TrainConfig(epochs=1, max_batches=3, weight_decay=0), resolution=12,
          params=list(m.classifier.parameters()))
    assert torch.equal(frozen, m.features[0].weight)


def test_diverging_loss_raises(digits):
    m = create_model("vgg_tiny", num_classes=10, in_channels=1)
    with pytest.raises(DivergedError, match="loss became"):
        train(m, digits, TrainConfig(epochs=2, lr=1e12, momentum=0.9), resolution=12)


def test_distillation_term_is_used(digits):
    torch.manual_seed(0)
    teacher = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s1 = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s2 = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s2.load_state_dict(s1.state_dict())
    l1 = train(s1, digits, TrainConfig(epochs=1, max_batches=3), resolution=12)
    l2 = train(s2, digits, TrainConfig(epochs=1, max_batches=3, distill_weight=0.5), resolution=12, teacher=teacher)
    assert l1 != l2


def test_bn_recalibration_is_exact_average(digits):
    m = create_model("vgg_tiny", num_classes=10, in_channels=1)
    batches = calibration_batches(digits, 64, 32, resolution=12)
    assert calibration_batches(digits, 64, 32, resolution=12) is batches  # cached
    recalibrate_bn(m, batches)
    bn = m.features[1]
    with torch.no_grad():
        feats = torch.cat([m.features[0](x) for x in batches])
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
