"""TASCNet: layer counting, stage-1 rebuilding, stage-2 pair selection and removal, a tiny full run."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from natkit.measure import count_macs, count_params
from natkit.methods.tascnet import layers as L
from natkit.methods.tascnet import method as T
from natkit.methods.tascnet import stages as St
from natkit.prune.surgery import remove_channels
from natkit.methods.tascnet import similarity as S

torch.set_num_threads(1)


class Residual(nn.Module):
    """conv-bn-relu-conv-bn + identity: the add must not count, both convs must."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class HandNet(nn.Module):
    def __init__(self, n_out=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.block = Residual(8)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 12), nn.ReLU(),
                                  nn.Dropout(0.1), nn.Linear(12, n_out))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def test_layer_counting_from_output_skips_non_meaningful_modules():
    net = HandNet()
    names = [n for n, _ in L.meaningful_layers(net, torch.zeros(1, 1, 8, 8))]
    assert names == ["head.5", "head.2", "block.conv2", "block.conv1", "stem.0"]


def test_layer_counting_follows_execution_not_definition_order():
    class Swapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(4, 2)  # defined first, runs last
            self.early = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return self.late(self.bn(self.early(x)).mean((2, 3)))

    assert [n for n, _ in L.meaningful_layers(Swapped(), torch.zeros(1, 1, 5, 5))] == ["late", "early"]


def test_residual_width_is_pinned_to_trunk_then_tied_when_all_partners_are_rebuilt():
    net = HandNet()
    ex = torch.zeros(2, 1, 8, 8)
    slots = {s.name: s for s in L.layer_slots(net, ex, 2)}  # head.2, block.conv2
    assert slots["head.2"].width_choices is not None and slots["head.2"].dropout_choices is not None
    assert slots["block.conv2"].width_choices is None  # added to the stem output, which stays frozen
    assert slots["block.conv2"].kernel_choices == (1, 3, 5)
    slots = {s.name: s for s in L.layer_slots(net, ex, 4)}  # ... block.conv1, stem.0 too
    assert slots["block.conv2"].width_choices is not None
    assert slots["stem.0"].tied_to == "block.conv2"
    assert slots["block.conv1"].tied_to is None


def test_scaled_width_domain():
    assert L.scaled_widths(512) == (64, 128, 256, 512)
    assert L.scaled_widths(64) == (8, 16, 32, 64)


def test_stage1_candidate_has_the_widths_its_genome_says():
    from natkit.nets import create_model

    base = create_model("vgg_small", num_classes=10, in_channels=1)
    ex = torch.zeros(2, 1, 16, 16)
    slots = L.layer_slots(base, ex, 3, kernels=(2, 3, 5))
    assert [s.kind for s in slots] == ["dense", "conv", "conv"]
    space = St.Stage1Space(slots, 3)
    x = [1, 2, 0, 1, 3, 0]  # dense 32 units, dropout .5; conv 8 filters k3; conv 64 filters k2
    enc = space.repair(x)
    assert enc[:2] == [1, 3]
    plan = space.decode(enc)["layers"]
    assert [(p["width"], p["kernel"], p["dropout"]) for p in plan] == [(32, None, 0.5), (8, 3, None), (64, 2, None)]
    model = L.rebuild(base, plan, ex, num_classes=4, seed=0)
    feats = model.features
    dense, conv_a, conv_b = (model.get_submodule(p["name"]) for p in plan)
    assert isinstance(dense, nn.Sequential) and dense[0].out_features == 32 and dense[1].p == 0.5
    assert conv_a.out_channels == 8 and conv_a.kernel_size == (3, 3)
    assert conv_b.out_channels == 64 and conv_b.kernel_size == (2, 2) and conv_b.in_channels == 32
    assert model(ex).shape == (2, 4)
    # trunk frozen, rebuilt layers trainable, rebuilt weights He-normal (std ~ sqrt(2 / fan_in))
    assert not any(p.requires_grad for p in feats[0].parameters())
    assert all(p.requires_grad for p in conv_b.parameters())
    fan_in = conv_b.weight[0].numel()
    assert abs(conv_b.weight.std().item() - (2 / fan_in) ** 0.5) < 0.2 * (2 / fan_in) ** 0.5


def test_frozen_trunk_batch_norm_keeps_its_statistics_while_training(digits):
    from natkit.nets import create_model

    base = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s = St.Setting(digits, 12, 1, max_batches=2, batch_size=16)
    slots = L.layer_slots(base, s.example, 1)
    model = L.rebuild(base, L.decode_genome(slots, [0, 0]), s.example, digits.num_classes)
    trunk_bn = model.features[1]
    before = trunk_bn.running_mean.clone()
    w_before = model.features[0].weight.clone()
    s.fit(model, 1, seed=0, params=L.trainable_parameters(model))
    assert torch.equal(trunk_bn.running_mean, before)
    assert torch.equal(model.features[0].weight, w_before)
    L.unfreeze(model)
    s.fit(model, 1, seed=0)
    assert not torch.equal(trunk_bn.running_mean, before)


def test_rebuilt_candidate_reloads_through_the_core_registry(tmp_path):
    from natkit.nets import create_model
    from natkit.nets.io import load_model, save_model

    base = create_model("resnet_tiny", num_classes=10, in_channels=1)
    ex = torch.zeros(2, 1, 12, 12)
    slots = L.layer_slots(base, ex, 2)
    lo, hi = L.genome_bounds(slots)
    plan = L.decode_genome(slots, hi)
    model = L.describe(L.rebuild(base, plan, ex, 3), base.natkit_arch, plan, 3, 12, 1)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    again.eval(), model.eval()
    x = torch.randn(2, 1, 12, 12)
    assert torch.allclose(again(x), model(x), atol=1e-6)


# ---- stage 2: trajectories and pairs ----------------------------------------------------------


def _constructed_trajectory():
    """6 filters, 3 epochs: (1,4) nearly parallel all the time, (0,5) parallel only at the end,
    (2,3) point opposite ways (least similar, what an ascending sort would pick)."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 10, generator=g)
    epochs = []
    for e in range(3):
        w = base.clone() + 0.01 * e
        w[4] = 2.0 * w[1] + 0.01 * torch.randn(10, generator=g)  # (1,4): same direction, bigger
        w[5] = w[0] if e == 2 else torch.randn(10, generator=g)
        w[3] = -w[2]
        epochs.append(w)
    return torch.stack(epochs)


def test_pair_selection_picks_the_most_similar_pairs():
    traj = _constructed_trajectory()
    sim = S.trajectory_similarity(traj)
    assert torch.isinf(sim.diagonal()).all()  # never i == j
    pairs = S.most_similar_pairs(sim, 1)
    assert pairs == [(1, 4)]
    two = S.most_similar_pairs(sim, 2)
    assert two[0] == (1, 4) and (2, 3) not in two
    flat = [i for p in S.most_similar_pairs(sim, 3) for i in p]
    assert len(flat) == len(set(flat))  # disjoint pairs
    l1 = S.l1_over_epochs(traj)
    assert S.filters_to_remove([(1, 4)], l1) == [1]  # filter 1 is half of filter 4


def test_pair_count_is_capped_by_disjointness():
    sim = S.trajectory_similarity(torch.randn(2, 5, 4))
    assert len(S.most_similar_pairs(sim, 10)) == 2
    assert S.most_similar_pairs(sim, 0) == []


def test_recorder_and_groups_on_a_residual_net():
    net = HandNet()
    ex = torch.zeros(2, 1, 8, 8)
    groups = S.conv_channel_groups(net, ex)
    by_root = {g.name: g for g in groups}
    # stem and block.conv2 are tied by the residual add: one group with both members
    tied = [g for g in groups if len(g.members) == 2]
    assert len(tied) == 1 and {id(m) for m in tied[0].members} == {id(net.stem[0]), id(net.block.conv2)}
    assert "block.conv1" in by_root
    rec = S.TrajectoryRecorder(groups)
    rec.record()
    rec.record()
    t = rec.trajectory(groups.index(tied[0]))
    assert t.shape == (2, 8, 1 * 9 + 8 * 9)


def test_pull_together_loss_raises_similarity_of_the_pair():
    conv = nn.Conv2d(2, 4, 3)
    g = S.ChannelGroup(conv, "c", [conv])
    before = torch.nn.functional.cosine_similarity(conv.weight[0].flatten(), conv.weight[1].flatten(), 0)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        S.pull_together_loss([g], [[(0, 1)]], 1.0).backward()
        opt.step()
    after = torch.nn.functional.cosine_similarity(conv.weight[0].flatten(), conv.weight[1].flatten(), 0)
    assert after > before


def test_pruned_network_runs_and_its_counts_drop_as_expected():
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    ex = torch.zeros(2, 1, 10, 10)
    p0, m0 = count_params(net), count_macs(net, 10, 1)
    groups = S.conv_channel_groups(net, ex)
    first = next(g for g in groups if g.root is net[0])
    remove_channels(net, {first.root: [1, 5]}, ex)
    assert net[0].out_channels == 6 and net[1].num_features == 6 and net[3].in_channels == 6
    # per removed filter: its 9 weights + bias, 2 BN affine, and 6 x 9 weights of the next conv
    assert p0 - count_params(net) == 2 * (9 + 1 + 2 + 6 * 9)
    assert count_macs(net, 10, 1) < m0
    assert net(torch.randn(2, 1, 10, 10)).shape == (2, 3)


def _stage2_setup(digits):
    """A tiny fine-tuned start network and a stage-2 space that accepts any accuracy (the loop keeps pruning)."""
    from natkit.nets import create_model

    base = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s = St.Setting(digits, 12, 1, max_batches=3, batch_size=32)
    model = L.describe(L.rebuild(base, [], s.example, 10), base.natkit_arch, [], 10, 12, 1)
    trajs = St.finetune_recording(model, s, 2, seed=0)
    m0 = {"error": s.error(model), **s.measure(model)}
    start = St.Stage2Start(model, trajs, 1 - m0["error"], m0)
    names = [g.name for g in S.conv_channel_groups(model, s.example, min_channels=2)]
    space = St.Stage2Space(names, tolerances=(100.0,))
    return s, m0, start, space, space.repair([4] * len(names) + [0])


def test_stage2_evaluation_removes_filters_within_tolerance(digits):
    s, m0, start, space, enc = _stage2_setup(digits)
    seen = []
    ev = St.Stage2Evaluator(start, space, s, epochs=1, max_iterations=2, min_channels=2,
                           on_iteration=lambda *a: seen.append(a[1]))
    metrics, arch, extra, pruned = ev._evaluate(enc)
    assert extra["iterations"] == 2 and seen == [1]
    assert metrics["macs"] < m0["macs"] and metrics["params"] < m0["params"]
    widths = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert all(w >= 2 for w in widths) and widths != [4, 8]
    assert pruned(s.example).shape == (2, 10)


def test_stage2_closing_finetune_trains_the_kept_network_and_is_measured_after(digits):
    s, _, start, space, enc = _stage2_setup(digits)
    kw = dict(epochs=1, max_iterations=1, min_channels=2, seed=3)
    _, _, plain_extra, plain = St.Stage2Evaluator(start, space, s, **kw)._evaluate(enc)
    metrics, _, extra, closed = St.Stage2Evaluator(start, space, s, final_epochs=1, **kw)._evaluate(enc)
    assert "final_epochs" not in plain_extra and extra["final_epochs"] == 1
    # same cut, then extra training: same widths, different weights, and the metrics are the closed network's
    assert extra["before_final"]["macs"] == metrics["macs"] == plain_extra["log"][0]["macs"]
    assert not all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), closed.state_dict().values()))
    assert metrics["error"] == pytest.approx(s.error(closed))


# ---- the whole method ---------------------------------------------------------------------------


def _ctx(make_ctx, digits, **options):
    opts = {"model": "vgg_tiny", "resolution": "12", "pretrain_samples": "10", "pretrain_epochs": "1",
            "max_batches": "2", "generations": 1, "pop_size": 3, **options}
    return make_ctx("tascnet", digits, quick=True, options=opts)


def test_tiny_two_stage_run_writes_an_archive(tmp_path, digits, make_ctx):
    # no max_batches cap: quick's 2 epochs of digits (36 steps) take candidates clear of chance level, so
    # the front (which leaves at-chance rows out) is not empty
    ctx = _ctx(make_ctx, digits, max_batches="none")
    T.run(ctx)
    cands = ctx.archive.candidates(method="tascnet", run_id=ctx.run_id)
    stages = [c.extra.get("stage") for c in cands]
    assert 1 in stages and 2 in stages
    s1 = [c for c in cands if c.extra.get("stage") == 1 and isinstance(c.encoding, list)]
    assert all(c.encoding[0] == 1 for c in s1) and any(c.encoding[1] == 1 for c in s1)
    s2 = [c for c in cands if c.extra.get("stage") == 2 and isinstance(c.encoding, list)]
    assert s2 and all(c.encoding[0] == 2 for c in s2)
    assert all(c.params and c.macs and c.error is not None for c in cands if c.status == "ok")
    front = ctx.archive.front(ctx.objectives, run_id=ctx.run_id)
    assert front and all(c.test_error is not None for c in front)


def test_bad_option_is_a_config_error(tmp_path, digits, make_ctx):
    from natkit.errors import ConfigError

    with pytest.raises(ConfigError, match="kernels"):
        T.run(_ctx(make_ctx, digits, kernels="7,9"))
    with pytest.raises(ConfigError, match="unknown tascnet option"):
        T.run(_ctx(make_ctx, digits, widths="1"))


def test_stage1_evaluation_is_deterministic(digits):
    from natkit.nets import create_model

    base = create_model("vgg_tiny", num_classes=10, in_channels=1)
    s = St.Setting(digits, 12, 1, max_batches=2, batch_size=16)
    head = L.describe(L.rebuild(base, [], s.example, 10), base.natkit_arch, [], 10, 12, 1)
    space = St.Stage1Space(L.layer_slots(head, s.example, 2), 2)
    ev = St.Stage1Evaluator(head, space, s, epochs=1, seed=3, base_arch=base.natkit_arch)
    enc = space.repair(np.zeros(space.n_var, dtype=int))
    a, b = ev._evaluate(enc), ev._evaluate(enc)
    assert a[0] == b[0]
    for pa, pb in zip(a[3].parameters(), b[3].parameters()):
        assert torch.equal(pa, pb)
    assert copy.deepcopy(a[3])(s.example).shape == (2, 10)


def test_user_weights_replace_pretraining(tmp_path, digits, make_ctx):
    from safetensors.torch import save_file

    from natkit.nets import create_model
    from natkit.nets.io import load_model

    src = create_model("vgg_tiny", num_classes=7, in_channels=1)  # another head size: it is replaced anyway
    with torch.no_grad():
        src.features[0].weight.fill_(0.125)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    ctx = _ctx(make_ctx, digits, weights=str(path), s2_iterations="1")
    ctx.keep_models = "all"
    T.run(ctx)
    head_only = next(c for c in ctx.archive.candidates(run_id=ctx.run_id) if c.encoding == [1, 0])
    model = load_model(ctx.model_dir / str(head_only.id))
    assert torch.all(model.features[0].weight == 0.125)


def test_k_grows_from_one_until_accuracy_stops_improving(tmp_path, digits, make_ctx):
    ctx = _ctx(make_ctx, digits, k="auto", k_max="3", s2_iterations="1")
    T.run(ctx)
    rounds = ctx.stats["stage1"]
    assert [r["k"] for r in rounds] == list(range(1, len(rounds) + 1))
    head_acc = 1 - next(c for c in ctx.archive.candidates(run_id=ctx.run_id) if c.encoding == [1, 0]).error
    best = [head_acc] + [r["best_val_acc"] for r in rounds]
    for i in range(1, len(rounds)):  # every round but the last improved on all before it
        assert best[i] > max(best[:i])
    if len(rounds) < 3:  # stopped early: the last round did not improve
        assert best[-1] <= max(best[:-1])
    ks = {c.extra.get("k") for c in ctx.archive.candidates(run_id=ctx.run_id) if c.extra.get("stage") == 1}
    assert ks == {0, *range(1, len(rounds) + 1)}


def test_resuming_a_finished_run_adds_no_rows(tmp_path, digits, make_ctx):
    """A resumed run replays the search: every evaluation and every stage-2 bookkeeping row (the
    unpruned start, each iteration) is read back, so the archive ends as an uninterrupted run left it."""
    import dataclasses

    ctx = _ctx(make_ctx, digits)
    T.run(ctx)
    before = [(c.id, c.eval_key, c.encoding, c.error) for c in ctx.archive.candidates(run_id=ctx.run_id)]
    again = dataclasses.replace(ctx, resume=True)
    again.stats = {}
    T.run(again)
    after = [(c.id, c.eval_key, c.encoding, c.error) for c in ctx.archive.candidates(run_id=ctx.run_id)]
    assert after == before
