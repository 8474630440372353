"""natkit.baselines: the comparisons the benchmarks make, tested on tiny models and data."""

import numpy as np
import pytest
import torch

from natkit.baselines import retrain as BR
from natkit.baselines import torch_pruning as BL
from natkit.baselines.l1 import l1_to_macs
from natkit.core.task import Split, Task
from natkit.data import load_task
from natkit.measure import count_macs, count_params
from natkit.methods.lda import method as lda
from natkit.methods.lda import utility as LU
from natkit.methods.progressive import method as P
from natkit.nets import create_model
from natkit.train import TrainConfig

torch.set_num_threads(1)

TINY = {"model": "vgg_tiny", "resolution": 16, "transfer_epochs": 1, "finetune_epochs": 1, "trace_images": 64,
        "max_batches": 3, "schedule_rounds": 1, "eta_start": 1.0, "robust_images": 32}


@pytest.fixture(scope="module")
def task():
    return load_task("digits", seed=0, samples_per_class=20)


def _toy_split(n, g):
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[:, 0, :4, :4] += (y == 0).float().view(-1, 1, 1)
    return Split(x, y)


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    return Task("toy", "toy", 3, _toy_split(64, g), _toy_split(32, g), _toy_split(32, g))


def _toy_model():
    torch.manual_seed(0)
    return create_model("vgg", num_classes=3, in_channels=1, cfg=[4, "M", 6, 6, "M"], hidden=(8,))


# --- Torch-Pruning at LDA's widths, uniform ratio, global ranking -------------------------------------------

def test_baselines_cut_to_ldas_exact_widths(task):
    cfg = lda.LDAConfig.from_options(TINY)
    base, _ = lda.prepare_base(task, cfg, seed=0, log=lambda m: None)
    pruner = lda.Pruner(task, cfg, seed=0)
    u, _, _ = pruner.utility(base)
    pruned, _ = pruner.prune(base, LU.keep_top(u, 5), 1.0)
    target = BL.widths(pruned)
    assert target != BL.widths(base)
    loss_fn = BL.taylor_loss(task, pruner, 0)
    for imp in BL.IMPORTANCES:
        b = BL.prune_to_widths(base, target, pruner.example, imp, loss_fn=loss_fn, seed=0)
        assert BL.widths(b) == target
        assert count_params(b) == count_params(pruned) and count_macs(b, 16, 1) == count_macs(pruned, 16, 1)
    # L1 keeps the first conv's filters of highest Torch-Pruning group L1 importance
    import torch_pruning as tp

    from natkit.prune.surgery import dependency_graph

    conv = base.features[0]
    group = dependency_graph(base, pruner.example).get_pruning_group(
        conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
    scores = tp.importance.MagnitudeImportance(p=1)(group)
    top = torch.topk(scores, target["features.0"]).indices.sort().values
    b = BL.prune_to_widths(base, target, pruner.example, "l1", seed=0)
    assert torch.equal(b.features[0].weight, conv.weight[top])


def test_global_baseline_reaches_the_count_and_keeps_the_floors(task):
    cfg = lda.LDAConfig.from_options(TINY)
    base, _ = lda.prepare_base(task, cfg, seed=0, log=lambda m: None)
    pruner = lda.Pruner(task, cfg, seed=0)
    w0 = BL.widths(base)
    # the first conv sits at its floor already: global ranking must leave it alone
    floors = {"features.0": w0["features.0"], "features.4": 2, "classifier.1": 3}
    target = int(0.5 * count_params(base))
    loss_fn = BL.taylor_loss(task, pruner, 0)
    for imp in BL.IMPORTANCES:
        b = BL.prune_global(base, target, pruner.example, imp, floors=floors, loss_fn=loss_fn, seed=0)
        w = BL.widths(b)
        assert w["features.0"] == w0["features.0"]
        assert w["features.4"] >= 2 and w["classifier.1"] >= 3
        assert w["classifier.1"] < w0["classifier.1"] or w["features.4"] < w0["features.4"]
        # the nearer of the two steps around the target: within a few percent of it
        assert abs(count_params(b) - target) <= 0.1 * target, (imp, count_params(b), target)




# --- progressive's baselines: same final widths, same epochs ---------------------------------------------------

def test_retrain_baselines_reach_progressives_widths_with_equal_epochs(toy, monkeypatch):
    epochs = {}

    def fake_train(model, task, cfg, **kw):  # record the schedule instead of training (seconds, not minutes)
        epochs.setdefault(kw["seed"] if isinstance(kw.get("seed"), str) else "run", []).append(cfg.epochs)
        epochs.setdefault("_all", []).append(cfg.epochs)

    rt = P.Retraining(TrainConfig(epochs=2, lr=0.05, batch_size=32), resolution=8, channels=1)
    base = _toy_model()
    progressive = _toy_model()
    P.simplify(progressive, toy, [0.5] * 3, rt, criterion="l1", score_batches=None)
    target = P.conv_widths(progressive)
    monkeypatch.setattr(BR, "train", fake_train)
    n = len(P.conv_widths(base))
    for fn in (BR.whole_model_retrain_per_action, BR.one_shot_retrain, BR.l1_retrain):
        epochs.clear()
        kw = {"actions": 2} if fn is BR.whole_model_retrain_per_action else {}
        model = fn(base, toy, 0.5, "l1", rt, None, 0, resolution=8, channels=1, **kw)
        assert P.conv_widths(model) == target, fn.__name__
        assert count_params(model) == count_params(progressive), fn.__name__
        assert sum(epochs["_all"]) == pytest.approx(n * rt.cfg.epochs), fn.__name__  # n layers x E epochs
    assert P.conv_widths(base) != target  # the baselines work on copies


# --- L1 at MACs matched within 1% (TASCNet's stage 2 comparison) -----------------------------------------------

@pytest.mark.parametrize("share", [0.6, 0.3])
def test_l1_to_macs_lands_within_one_percent_and_leaves_the_model(share):
    torch.manual_seed(0)
    model = create_model("vgg", num_classes=3, in_channels=1, cfg=[16, "M", 32, 32, "M"], hidden=(8,))
    example = torch.zeros(1, 1, 8, 8)
    full = count_macs(model, 8, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, gap = l1_to_macs(model, example, share * full)
    macs = count_macs(pruned, 8, 1)
    assert macs / (share * full) - 1 == pytest.approx(gap)
    assert abs(gap) <= 0.01
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert np.isfinite(pruned(example).sum().item())


def test_l1_to_macs_refuses_a_target_above_the_network():
    from natkit.errors import NatkitError

    model = _toy_model()
    with pytest.raises(NatkitError, match="already has"):
        l1_to_macs(model, torch.zeros(1, 1, 8, 8), 1.2 * count_macs(model, 8, 1))
