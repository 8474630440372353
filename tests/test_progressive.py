"""The progressive process on a tiny VGG and a synthetic task (seconds)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from natkit.core.task import Split, Task
from natkit.errors import ConfigError
from natkit.methods.progressive import method as P
from natkit.methods.progressive import process as PR
from natkit.nets import create_model
from natkit.methods.progressive.relevance import lowest_ranked
from natkit.train import TrainConfig

torch.set_num_threads(1)

CFG = [4, "M", 6, 6, "M"]


def _split(n, g):
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[:, 0, :4, :4] += (y == 0).float().view(-1, 1, 1)
    x[:, 0, 4:, 4:] += (y == 1).float().view(-1, 1, 1)
    return Split(x, y)


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(0)
    return Task("toy", "toy", 3, _split(96, g), _split(48, g), _split(48, g))


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("vgg", num_classes=3, in_channels=1, cfg=CFG, hidden=(8,))


def _rt(lr=0.05, bn_stats=PR.DEFAULT_BN_STATS):
    return PR.Retraining(TrainConfig(epochs=1, lr=lr, batch_size=32), resolution=8, channels=1, bn_stats=bn_stats)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bn_stats", ["frozen", "update"])
@pytest.mark.parametrize("pos", [0, 1, 2])
def test_retraining_for_layer_l_changes_only_layers_1_to_l_plus_1(task, pos, bn_stats):
    model = _model()
    model.train()  # with bn_stats=frozen, frozen BNs must not update running statistics in training mode
    layers = PR.weight_layers(model)
    convs = PR.conv_indices(layers)
    before = _state(model)
    shares = [0.0, 0.0, 0.0]
    shares[pos] = 0.5
    steps = PR.simplify(model, task, shares, _rt(bn_stats=bn_stats), criterion="l1", score_batches=None)
    eliminated = steps[pos].eliminated
    assert len(eliminated) == 2 if pos == 0 else 3
    after = _state(model)
    stats_moved = []
    last_trained = convs[pos] + 1  # the next weight layer (a conv, or the head's first Linear)
    for layer in layers:
        for name, _ in layer.members:
            for key in [k for k in before if k.startswith(name + ".") and not k.endswith("num_batches_tracked")]:
                old, new = before[key], after[key]
                if layer.index <= last_trained:
                    # this layer was retrained: its (surviving) weights moved
                    if layer.index == convs[pos] and old.dim() > 0:
                        old = old[[i for i in range(old.shape[0]) if i not in eliminated]]
                    elif layer.index == convs[pos] + 1 and key.endswith("weight") and old.dim() > 1:
                        old = old[:, [i for i in range(old.shape[1]) if i not in eliminated]]
                    if key.endswith("weight") and layer.members[0][0] == name:
                        assert not torch.equal(old, new), f"{key} should have been retrained"
                elif bn_stats == "update" and key.endswith(("running_mean", "running_var")):
                    # running statistics follow the retrained layers' new outputs; weights stay
                    stats_moved.append(not torch.equal(old, new))
                else:
                    assert torch.equal(old, new), f"{key} changed but layer {layer.index} is frozen"
    if bn_stats == "update" and stats_moved:
        assert any(stats_moved), "bn_stats=update: frozen layers' running statistics should follow the new inputs"
    # the classifier output layer is never retrained
    head_out = PR.weight_layers(model)[-1].name
    assert torch.equal(before[head_out + ".weight"], after[head_out + ".weight"])
    later = {n for l in layers if l.index > last_trained for n, _ in l.members}
    assert layers[last_trained].name in steps[pos].trained and not later & set(steps[pos].trained)


def test_eliminated_kernels_are_the_lowest_ranked_on_a_constructed_example(task):
    model = _model()
    conv = PR.weight_layers(model)[0].module
    with torch.no_grad():
        # kernel k scaled so the L1 ranking is known: kernels 2 and 0 are the weakest
        for k, s in enumerate([0.2, 3.0, 0.1, 1.0]):
            conv.weight[k] = s * conv.weight[k].sign()
    original = conv.weight.detach().clone()
    seen = {}
    PR.simplify(model, task, [0.5, 0.0, 0.0], _rt(lr=1e-7), criterion="l1", score_batches=None,
               on_layer=lambda pos, step, m: seen.setdefault(pos, step))
    assert seen[0].eliminated == [0, 2]
    assert seen[0].eliminated == lowest_ranked(np.array(seen[0].scores), 2)
    kept = PR.weight_layers(model)[0].module.weight.detach()
    assert kept.shape[0] == 2
    assert torch.allclose(kept, original[[1, 3]], atol=1e-4)  # the strong kernels survive, in order


def test_data_criterion_matches_its_own_ranking(task):
    model = _model(seed=3)
    sb = PR.fixed_subset(task, 64, resolution=8, channels=1, seed=0)
    seen = {}
    PR.simplify(model, task, [0.0, 0.5, 0.0], _rt(), criterion="mean_abs", score_batches=sb,
               on_layer=lambda pos, step, m: seen.setdefault(pos, step))
    step = seen[1]
    assert step.eliminated == lowest_ranked(np.array(step.scores), 3)
    assert seen[0].eliminated == [] and seen[0].trained == []  # share 0: nothing eliminated, no retraining


def test_same_seed_same_result_and_prefix_resume_is_exact(task):
    a, b = _model(), _model()
    sb = PR.fixed_subset(task, 64, resolution=8, channels=1)
    PR.simplify(a, task, [0.5, 0.5, 0.3], _rt(), criterion="mean_abs", score_batches=sb, seed=7)
    # resume: layer 1 first, then the rest from the saved state
    PR.simplify(b, task, [0.5, 0.0, 0.0], _rt(), criterion="mean_abs", score_batches=sb, seed=7)
    PR.simplify(b, task, [0.5, 0.5, 0.3], _rt(), criterion="mean_abs", score_batches=sb, seed=7, start=1)
    sa, sb_ = _state(a), _state(b)
    assert sa.keys() == sb_.keys()
    assert all(torch.equal(sa[k], sb_[k]) for k in sa)


def test_share_space_and_bad_inputs(task):
    space = P.ShareSpace([16, 32], step=0.1, max_level=8)
    assert space.decode([5, 3]) == {"shares": [0.5, 0.3], "widths": [8, 22]}
    with pytest.raises(ConfigError):
        P.ShareSpace([4], step=0.2, max_level=6)
    with pytest.raises(ConfigError, match="one elimination share per conv"):
        PR.simplify(_model(), task, [0.5], _rt(), criterion="l1")
    resnet = create_model("resnet_tiny", num_classes=3, in_channels=1)
    with pytest.raises(ConfigError, match="chain CNN"):
        PR.check_chain(resnet)


def test_evaluator_archives_every_intermediate_state(task, tmp_path):
    from natkit.core.archive import Archive
    from natkit.core.problem import ArchiveProblem, make_eval_key
    from natkit.core.budget import Budget

    archive = Archive(tmp_path / "a.sqlite")
    run_id = archive.start_run("progressive", "toy", {}, 0)
    base = _model()
    space = P.ShareSpace(PR.conv_widths(base), step=0.25, max_level=3)
    ev = P.ProgressiveEvaluator(base, task, space, _rt(), criterion="mean_abs", score_images=64, seed=0)
    key = make_eval_key("toy", "progressive", ev.settings())
    problem = ArchiveProblem(space, ev, ["error", "macs"], Budget(), archive, run_id, "progressive", key)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.archive, ctx.run_id = archive, run_id
    ctx.save_model = lambda cid, m: None
    ev.on_intermediate = P._archive_intermediate(ctx, problem, keep_model=False)
    out = {}
    problem._evaluate(np.array([[2, 1, 2]]), out)
    cands = archive.candidates(run_id=run_id)
    stages = {tuple(c.encoding): c.extra["stage"] for c in cands}
    assert stages == {(2, 0, 0): "layer 1", (2, 1, 0): "layer 2", (2, 1, 2): "final"}
    assert all(c.method == "progressive" and c.status == "ok" for c in cands)
    macs = {tuple(c.encoding): c.macs for c in cands}
    assert macs[(2, 1, 2)] < macs[(2, 1, 0)] < macs[(2, 0, 0)]
    # a candidate sharing the prefix resumes from the cached state after layer 2 and equals a fresh run
    res = ev.evaluate([2, 1, 1])
    assert res.extra["resumed_from_layer"] == 2
    fresh = P.ProgressiveEvaluator(base, task, space, _rt(), criterion="mean_abs", score_images=64, seed=0)
    assert fresh.evaluate([2, 1, 1]).metrics == res.metrics


@pytest.mark.parametrize("options, match", [
    ({"relevanse": "l1"}, "unknown progressive option 'relevanse'"),
    ({"relevance": "bogus"}, "unknown relevance 'bogus'"),
    ({"relevance": "l1", "decisions": "d.toml"}, "only with relevance=human"),
    ({"epochs": "two"}, "epochs='two'"),
    ({"bn_stats": "thaw"}, "bn_stats"),
    ({"score_images": "0"}, "score_images=0"),
])
def test_method_options_are_checked(task, tmp_path, options, match, make_ctx):
    with pytest.raises(ConfigError, match=match):
        make_ctx("progressive", task, options=options)


def test_default_options_use_the_default_criterion(task, tmp_path, make_ctx):
    ctx = make_ctx("progressive", task, options={"epochs": "2", "lr": "0.02"})
    s = P.settings_from(ctx)
    assert s["relevance"] == PR.DEFAULT_CRITERION and s["epochs"] == 2.0 and s["lr"] == 0.02


_RES = Path(__file__).resolve().parents[1] / "results" / "progressive"


def test_default_lr_is_the_digits_benchmarks_choice():
    """The method's default lr is what the committed digits benchmark chose on validation (lr.json)."""
    assert P.OPTION_DEFAULTS["lr"] == json.loads((_RES / "lr.json").read_text())["chosen"]["progressive"]


def test_default_criterion_is_the_digits_benchmarks_choice():
    """natkit's default criterion is the committed digits benchmark's validation choice (criteria.json)."""
    assert PR.DEFAULT_CRITERION == json.loads((_RES / "criteria.json").read_text())["best"]


def test_default_bn_stats_is_the_digits_benchmarks_choice():
    """natkit's BatchNorm reading of frozen layers is the lower-validation-error one of the committed digits
    bn.json."""
    runs = json.loads((_RES / "bn.json").read_text())["runs"]
    val = {b: np.mean([r["val_error"] for r in runs if r["bn_stats"] == b]) for b in ("frozen", "update")}
    assert PR.DEFAULT_BN_STATS == min(val, key=val.get)


def test_lr_and_criterion_are_chosen_under_the_pinned_bn_reading():
    """The committed lr and criterion choices were made under the benchmark's pinned BatchNorm reading, not
    under whatever natkit's default (which the bn part sets) happens to be."""
    from benchmarks.progressive.benchmark import CHOICE_BN

    for name in ("lr.json", "criteria.json"):
        assert json.loads((_RES / name).read_text())["setting"]["bn_stats"] == CHOICE_BN, name
