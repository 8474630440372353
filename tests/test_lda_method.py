"""Deep LDA pruning end to end on tiny settings: physical counts and the archive."""

import json

import pytest
import torch

from natkit.data import load_task
from natkit.errors import ConfigError
from natkit.measure import count_macs, count_params
from natkit.methods.lda import method as lda
from natkit.nets.io import load_model
from natkit.methods.lda import utility as LU

torch.set_num_threads(1)

# 60 transfer steps at lr 0.1 take the base clear of chance level (at-chance rows are kept off the front)
TINY = {"model": "vgg_tiny", "resolution": 16, "transfer_epochs": 20, "finetune_epochs": 1, "trace_images": 64,
        "max_batches": 3, "schedule_rounds": 1, "eta_start": 1.0, "robust_images": 32, "lr": 0.1}


@pytest.fixture(scope="module")
def task():
    return load_task("digits", seed=0, samples_per_class=20)


def _thop_params(model, res, ch):
    import copy

    import thop

    model = copy.deepcopy(model)  # thop leaves its counters as buffers on the module

    x = torch.zeros(1, ch, res, res)
    _, params = thop.profile(model, inputs=(x,), verbose=False)
    return int(params)


def test_pruned_counts_match_thop_and_reload(task, tmp_path):
    cfg = lda.LDAConfig.from_options(TINY)
    base, _ = lda.prepare_base(task, cfg, seed=0, log=lambda m: None)
    pruner = lda.Pruner(task, cfg, seed=0)
    u, X, y = pruner.utility(base)
    keep = LU.keep_top(u, 5)
    pruned, removed = pruner.prune(base, keep, 1.0)
    assert removed["classifier.1"] == 16 - 5
    assert pruned.classifier[1].out_features == 5 and pruned.classifier[-1].in_features == 5
    assert count_params(pruned) < count_params(base)
    # our counts are thop's (the reference counter), and the physical model runs
    assert count_params(pruned) == _thop_params(pruned, 16, 1)
    assert count_macs(pruned, 16, 1) < count_macs(base, 16, 1)
    assert pruned(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    # the refreshed VGG description rebuilds the same shapes
    from natkit.nets.io import save_model

    save_model(pruned, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.natkit_arch["kwargs"]["hidden"] == [5]
    assert count_params(again) == count_params(pruned)


def test_tiny_lda_run_writes_an_archive(task, tmp_path, make_ctx):
    ctx = make_ctx("lda", task, seed=0, objectives=["error", "params", "robust_error"],
                   options={**TINY, "generations": 1, "pop_size": 3}, source_spec=None)
    arch, run_id = ctx.archive, ctx.run_id
    lda.run(ctx)
    cands = arch.candidates(run_id=run_id)
    assert {c.method for c in cands} == {"lda"}
    stages = [c.extra.get("stage") for c in cands]
    assert stages.count("unpruned") == 1 and "schedule" in stages and "search" in stages
    search = [c for c in cands if c.extra.get("stage") == "search" and c.status == "ok"]
    assert search and all(c.params <= cands[0].params for c in search)
    assert all(0.0 <= c.extra["robust_error"] <= 1.0 for c in search)
    assert all(set(c.extra) >= {"eta", "kept_share", "m_prime"} for c in search)
    front = arch.front(("error", "params"), run_id=run_id)
    assert front and any(c.test_error is not None for c in front)
    json.dumps(ctx.stats, default=str)


def test_space_decodes_eta_and_share():
    cfg = lda.LDAConfig(eta_step=0.1, eta_levels=10, shares=(0.1, 0.5, 1.0), per_layer_eta=True)
    space = lda.LDASpace(3, cfg)
    assert space.n_var == 4
    assert space.decode([1, 0, 10, 2]) == {"eta": [0.1, 0.0, 1.0], "kept_share": 1.0}
    shared = lda.LDASpace(3, lda.LDAConfig(eta_step=0.25, shares=(0.2, 1.0)))
    assert shared.decode([99, -3]) == {"eta": 5.0, "kept_share": 0.2}


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        lda.LDAConfig.from_options({"utility": "pca"})
    with pytest.raises(ConfigError):
        lda.LDAConfig.from_options({"nonsense": 1})
    with pytest.raises(ConfigError):
        lda.LDAConfig.from_options({"select": 1.5})
    assert lda.LDAConfig.from_options({"select": "otsu", "shares": "0.5,0.1"}).shares == (0.1, 0.5)


def test_eta_rounds_rise_to_each_groups_eta():
    from natkit.methods.lda.search import eta_rounds

    assert eta_rounds(1.0, 2, 0.5, 0.25) == [(0.5, 0.5), (0.75, 0.75), (1.0, 1.0)]
    assert eta_rounds([0.25, 1.0], 2, 0.5, 0.5) == [(0.25, 0.5), (0.25, 1.0)]
    assert eta_rounds(0.0, 3, 0.8, 0.4) == [(0.0, 0.0, 0.0)]


def test_progressive_candidates_reuse_the_schedule_prefix(task):
    cfg = lda.LDAConfig.from_options({**TINY, "eta_start": 0.5, "eta_step": 0.5, "eta_levels": 4,
                                      "shares": "0.1,0.5", "min_width": 0.0})
    base, _ = lda.prepare_base(task, cfg, seed=0, log=lambda m: None)
    pruner = lda.Pruner(task, cfg, seed=0)
    space = lda.LDASpace(pruner.n_groups(base), cfg)
    ev = lda.LDAEvaluator(base, pruner, space, seed=0)
    calls = []
    finetune = pruner.finetune
    pruner.finetune = lambda m, e, seed: (calls.append(seed), finetune(m, e, seed))[1]
    deep = ev.evaluate([4, 1])  # eta 2.0: rounds at 0.5, 1.0, 1.5, 2.0
    assert deep.status == "ok" and deep.extra["rounds"] == 4
    n_deep = len(calls)
    assert 1 <= n_deep <= 4 and calls == sorted(calls)  # one fine-tuning per round that removed something
    shallow = ev.evaluate([2, 1])  # eta 1.0 is a prefix of the deeper schedule: no new training
    assert len(calls) == n_deep and shallow.extra["rounds"] == 2
    assert shallow.metrics["params"] >= deep.metrics["params"]
    # M' is a share of the unpruned width, floored at classes - 1 (digits: 9 of 16)
    assert ev.m_prime(0.1, 16) == 9 and ev.m_prime(0.5, 16) == 9 and ev.m_prime(1.0, 16) == 16
    one = lda.LDAEvaluator(base, pruner, space, seed=0, mode="oneshot").evaluate([4, 1])
    assert one.status == "ok" and one.extra["rounds"] == 1


def test_report_note_names_intervals_that_exclude_zero_on_either_side():
    from benchmarks.lda import report as R

    both = R.significance(["~60% vs L1"], ["first >=90% vs Taylor"])
    assert "above 0 (LDA ahead) for: ~60% vs L1" in both and "below 0 (LDA behind) for: first >=90% vs Taylor" in both
    assert "excludes 0" not in R.significance([], ["x vs L1"])
    assert R.significance([], []) == "no paired 95% interval excludes 0"


def test_add_modes_refuses_a_missing_seed_or_a_mode_it_already_has(tmp_path):
    import json

    from benchmarks.lda import compression as C

    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "seed0.json").write_text(json.dumps({"comparisons": [{"l1_widths": {}, "l1_global": {}}]}))
    C.check_add_modes(tmp_path, [0], ["uniform"])  # not there yet: fine
    with pytest.raises(SystemExit, match="already has mode 'global'"):
        C.check_add_modes(tmp_path, [0], ["global"])
    with pytest.raises(SystemExit, match="seed1.json not found"):
        C.check_add_modes(tmp_path, [0, 1], ["uniform"])
