"""The pruning methods (lda, progressive, tascnet) refuse a params/MACs budget below the smallest network
they can reach before any training, and that network really is a lower bound of what they produce."""

from __future__ import annotations

import time

import numpy as np
import pytest

from natkit.core.budget import Budget
from natkit.core.feasibility import InfeasibleBudgetError
from natkit.measure import measure

TINY = {  # the contract test's tiny settings, trimmed to what the bound reads
    "lda": {"model": "vgg_tiny", "resolution": 12},
    "progressive": {"model": "vgg_tiny", "resolution": 12, "max_level": 2},
    "tascnet": {"model": "vgg_tiny", "resolution": 12},
}


@pytest.fixture(scope="module")
def digits():
    from natkit.data import load_task

    return load_task("digits", samples_per_class=12)


def _bound(method, ctx, source=None):
    """The method's smallest counts, as its check computes them."""
    if method == "lda":
        from natkit.methods.lda.smallest import smallest_counts

        return smallest_counts(ctx.options, ctx.task.num_classes, ctx.task.in_channels)
    if method == "progressive":
        from natkit.methods.progressive.smallest import smallest_counts

        return smallest_counts(ctx.options.to_dict(), ctx.task.num_classes, ctx.task.in_channels)
    from natkit.methods.tascnet.smallest import smallest_counts

    return smallest_counts(ctx.options, ctx.task.num_classes, ctx.options.resolution, source.in_channels)


def _check(method, ctx, source=None):
    import importlib

    check = importlib.import_module(f"natkit.methods.{method}.smallest").require_reachable_budget
    if method == "lda":
        return check(ctx)
    if method == "progressive":
        return check(ctx, ctx.options.to_dict())
    return check(ctx, lambda: source)


@pytest.mark.parametrize("method", ["lda", "progressive", "tascnet"])
def test_bound_is_refused_below_and_accepted_at_its_value(method, make_ctx, digits, tmp_path):
    ctx = make_ctx(method, digits, options=TINY[method], source_spec="digits")
    bound = _bound(method, ctx, digits)
    assert 0 < bound["params"] and 0 < bound["macs"]
    for key in ("params", "macs"):
        ctx = make_ctx(method, digits, options=TINY[method], source_spec="digits", out_dir=tmp_path / f"{key}_below",
                       budget=Budget({key: bound[key] - 1}))
        with pytest.raises(InfeasibleBudgetError, match=rf"{key} <= {bound[key] - 1:g} cannot be met"):
            _check(method, ctx, digits)
    ctx = make_ctx(method, digits, options=TINY[method], source_spec="digits", out_dir=tmp_path / "at",
                   budget=Budget(dict(bound)))
    _check(method, ctx, digits)  # exactly the bound: the check lets the run go on


@pytest.mark.parametrize("method", ["lda", "progressive", "tascnet"])
def test_unreachable_budget_exits_2_before_pretraining(method, tmp_path, capsys, monkeypatch, make_ctx, digits):
    import natkit.train
    import natkit.train.loop
    from natkit.cli import main
    from natkit.core.archive import Archive

    def no_training(*a, **k):
        raise AssertionError("pretrained or trained before the budget was checked")

    for mod in (natkit.train, natkit.train.loop):
        monkeypatch.setattr(mod, "train", no_training)
    monkeypatch.setattr(natkit.train, "pretrained", no_training)
    bound = _bound(method, make_ctx(method, digits, options=TINY[method], source_spec="digits", quick=True), digits)
    budget = tmp_path / "b.toml"
    budget.write_text(f"[budget]\nparams = {bound['params'] - 1}\n")
    options = [a for k, v in TINY[method].items() for a in ("--option", f"{k}={v}")]
    t0 = time.perf_counter()
    rc = main(["search", method, "--task", "digits", "--samples-per-class", "12", "--source", "digits", "--quick",
               "--out", str(tmp_path / "r"), "--budget", str(budget), "-q", *options])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and seconds < 10, seconds
    assert f"params <= {bound['params'] - 1} cannot be met" in err[-1]
    assert f"params {bound['params']:,}, macs {bound['macs']:,}" in err[-1] and "before any training" in err[-1]
    assert not Archive(tmp_path / "r" / "archive.sqlite").candidates()


def test_lda_prunes_no_network_below_its_bound(make_ctx, digits):
    """The paper's pruning step at any eta: never below the bound; at a huge eta and the smallest M', on it."""
    from natkit.methods.lda import utility as LU
    from natkit.methods.lda.method import Pruner
    from natkit.nets import create_model

    ctx = make_ctx("lda", digits, options={**TINY["lda"], "trace_images": 32})
    cfg = ctx.options
    bound = _bound("lda", ctx)
    base = create_model(cfg.model, num_classes=digits.num_classes, in_channels=digits.in_channels).eval()
    pruner = Pruner(digits, cfg)
    pruner.set_reference(base)
    u, _, _ = pruner.utility(base)
    rng = np.random.default_rng(0)
    for eta in rng.uniform(0, 3, size=4):
        share = float(rng.choice(cfg.shares))
        m = max(pruner.m_floor(len(u)), LU.share_to_count(share, len(u)))
        net, _ = pruner.prune(base, LU.keep_top(u, m), eta)
        counts = measure(net, cfg.resolution, digits.in_channels)
        assert counts["params"] >= bound["params"] and counts["macs"] >= bound["macs"]
    net, _ = pruner.prune(base, LU.keep_top(u, pruner.m_floor(len(u))), 1e9)
    again, _ = pruner.prune(net, LU.keep_top(pruner.utility(net)[0], pruner.m_floor(len(u))), 1e9)  # a 2nd round
    for n in (net, again):
        counts = measure(n, cfg.resolution, digits.in_channels)
        assert (counts["params"], counts["macs"]) == (bound["params"], bound["macs"])


def test_progressive_at_its_top_share_reaches_exactly_its_bound(make_ctx, digits, monkeypatch):
    import natkit.methods.progressive.process as P
    from natkit.methods.progressive.method import ShareSpace
    from natkit.nets import create_model
    from natkit.train import TrainConfig

    monkeypatch.setattr(P, "retrain_upto", lambda *a, **k: ([], []))  # counts do not depend on the weights
    ctx = make_ctx("progressive", digits, options=TINY["progressive"])
    s = ctx.options.to_dict()
    bound = _bound("progressive", ctx)
    model = create_model(s["model"], num_classes=digits.num_classes, in_channels=digits.in_channels)
    space = ShareSpace(P.conv_widths(model), step=s["share_step"], max_level=s["max_level"])
    rt = P.Retraining(TrainConfig(epochs=1), resolution=s["resolution"], channels=digits.in_channels)
    batches = P.fixed_subset(digits, 16, resolution=s["resolution"], channels=digits.in_channels)
    P.simplify(model, digits, space.shares([space.max_level] * space.n_var), rt, criterion="mean_abs",
               score_batches=batches)
    counts = measure(model, s["resolution"], digits.in_channels)
    assert (counts["params"], counts["macs"]) == (bound["params"], bound["macs"])


def test_tascnet_stage1_has_no_network_below_its_bound(make_ctx, digits):
    """Every stage-1 genome of every searchable k (built untrained) is at or above the bound; the bound is
    one of them."""
    from natkit.methods.tascnet.layers import KERNEL_DOMAINS, layer_slots, meaningful_layers, rebuild
    from natkit.methods.tascnet.stages import Setting, Stage1Evaluator, Stage1Space
    from natkit.nets import create_model

    ctx = make_ctx("tascnet", digits, options={**TINY["tascnet"], "k": "auto", "k_max": 3})
    o = ctx.options
    bound = _bound("tascnet", ctx, digits)
    s = Setting(digits, o.resolution, digits.in_channels)
    base = create_model(o.model, num_classes=digits.num_classes, in_channels=digits.in_channels)
    head = rebuild(base, [], s.example, digits.num_classes)
    seen = [measure(head, o.resolution, digits.in_channels)]
    rng = np.random.default_rng(0)
    for k in range(1, min(o.k_max, len(meaningful_layers(head, s.example)) - 1) + 1):
        space = Stage1Space(layer_slots(head, s.example, k, kernels=KERNEL_DOMAINS[o.kernels]), k)
        ev = Stage1Evaluator(head, space, s, epochs=0, seed=0, base_arch=base.natkit_arch)
        for x in [space.xl] + [rng.integers(space.xl, space.xu + 1) for _ in range(6)]:
            seen.append(measure(ev.build(space.repair(x)), o.resolution, digits.in_channels))
    for key in ("params", "macs"):
        assert min(c[key] for c in seen) == bound[key]
