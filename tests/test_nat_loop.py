"""A tiny NAT run end to end: archive with a front, surrogate stats, determinism, export."""

import json

import numpy as np
import pytest
import torch

from natkit.data import load_task
from natkit.errors import ConfigError
from natkit.methods.nat import method as nat
from natkit.api import make_context

torch.set_num_threads(1)

TINY_TOML = """
[space]
family = "nat_mbv3"
resolutions = [12, 16]
width_mults = [1.0, 1.2]
stem_width = 4
first_block_width = 4
stage_widths = [4, 8, 8, 8, 12]
feature_mix_width = 16
divisor = 4

[pretrain]
samples_per_class = 10
warmup_epochs = 0.5
epochs = 0.5
n_random = 1
batch_size = 32

[nat]
initial = 5
iterations = 2
k = 2
surrogate = "rbf_ensemble"
search_generations = 3
search_pop = 8
warmup_epochs = 0.2
adapt_epochs = 0.1
adapt_samples = 1
reeval = "front"
n_calib = 32
val_limit = 60
batch_size = 32
"""


def _ctx(tmp_path, name, **options):
    space = tmp_path / "nat_tiny.toml"
    space.write_text(TINY_TOML)
    task = load_task("digits", seed=0, samples_per_class=15)
    out = tmp_path / name
    out.mkdir()
    return make_context("nat", task=task, out_dir=out, seed=0, source_spec="digits",
                        options={"space": str(space), **options}, verbose=False)


def _front(ctx):
    return [(c.encoding, round(c.error, 6), c.macs) for c in ctx.archive.front(("error", "macs"), run_id=ctx.run_id)]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nat")
    mp = pytest.MonkeyPatch()
    mp.setenv("NATKIT_CACHE", str(tmp / "cache"))
    ctx = _ctx(tmp, "a")
    nat.run(ctx)
    yield tmp, ctx
    mp.undo()


def test_tiny_nat_run_writes_archive_front_and_log(tiny_run):
    _, ctx = tiny_run
    cands = ctx.archive.candidates(run_id=ctx.run_id)
    assert cands and all(c.method == "nat" for c in cands)
    new = [c for c in cands if not c.extra.get("reevaluation")]
    # initial archive (2 extremes + random, deduplicated) plus k per iteration
    assert 5 + 2 * 2 - 2 <= len(new) <= 5 + 2 * 2
    assert any(c.extra.get("reevaluation") for c in cands)  # archive re-evaluated after adaptation
    front = ctx.archive.front(("error", "macs"), run_id=ctx.run_id)
    assert front and all(0.0 <= c.error <= 1.0 for c in front)
    log = json.loads((ctx.out_dir / "nat_log.json").read_text())["iterations"]
    assert [e["iteration"] for e in log] == [0, 1, 2]
    assert all("surrogate_kendall" in e and "surrogate_rmse" in e for e in log[1:])
    gens = ctx.archive.generations(ctx.run_id)
    assert len(gens) == 3 and gens[-1]["n_evals"] == len(new)
    # the front's latest members were kept as standalone models with a test error
    assert any(c.test_error is not None for c in front)


def test_front_is_on_the_final_supernet_with_models_and_test_errors(tiny_run):
    _, ctx = tiny_run
    final = max(c.extra.get("supernet_version", 0) for c in ctx.archive.candidates(run_id=ctx.run_id))
    front = ctx.archive.front(("error", "macs"), run_id=ctx.run_id)
    assert front and all(c.extra["supernet_version"] == final for c in front)
    assert all((ctx.model_dir / str(c.id) / "arch.json").is_file() and c.test_error is not None for c in front)


def test_same_seed_same_front(tiny_run, monkeypatch):
    tmp, a = tiny_run
    monkeypatch.setenv("NATKIT_CACHE", str(tmp / "cache"))
    b = _ctx(tmp, "b")  # this run loads the supernet that the first one pretrained and cached
    nat.run(b)
    assert _front(a) == _front(b)


def test_pretrained_supernet_cached_with_config(tiny_run):
    tmp, _ = tiny_run
    metas = list((tmp / "cache").glob("nat-supernet-digits-*.json"))
    assert len(metas) == 1 and metas[0].with_suffix(".safetensors").is_file()
    meta = json.loads(metas[0].read_text())
    assert meta["config"]["config"]["resolutions"] == [12, 16]
    assert 0.0 <= meta["val_error_largest"] <= 1.0


def test_exported_subnet_matches_archived_error(tiny_run):
    from natkit.nets.io import load_model
    from natkit.train import evaluate

    _, ctx = tiny_run
    front = ctx.archive.front(("error", "macs"), run_id=ctx.run_id)
    c = next(c for c in front if (ctx.model_dir / str(c.id) / "arch.json").is_file())
    model = load_model(ctx.model_dir / str(c.id))
    res = evaluate(model, ctx.task, "val", resolution=model.natkit_input["resolution"],
                   channels=model.natkit_input["channels"], limit=60)
    assert res["error"] == pytest.approx(c.error, abs=1e-9)


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        nat.run(_ctx(tmp_path, "a", reeval="sometimes"))
    with pytest.raises(ConfigError):
        nat.run(_ctx(tmp_path, "b", bogus=1))


def test_spread_subset_picks_extremes_and_is_spread():
    F = np.array([[0.1, 9.0], [0.2, 5.0], [0.21, 4.9], [0.5, 1.0], [0.9, 0.1]])
    idx = nat.spread_subset(F, 3)
    assert idx[0] == 0 and 4 in idx and len(set(idx)) == 3
    assert nat.spread_subset(F, 10) == list(range(5))


def test_space_files_load():
    cfg, pre, n, budget = nat.load_nat_space("nat_imagenet")
    assert min(cfg.resolutions) == 192 and max(cfg.resolutions) == 256 and budget == {"macs": 600e6}
    cfg, pre, n, budget = nat.load_nat_space("nat_small")
    assert max(cfg.resolutions) <= 32


def test_gene_distribution_follows_good_genomes():
    from natkit.methods.nat.space import NATSpace
    from natkit.methods.nat.supernet import GeneDistribution
    from natkit.methods.nat.ofa_mbv3 import MBV3Config

    space = NATSpace(MBV3Config(), num_classes=10, in_channels=1)
    good = space.sample(50, np.random.default_rng(0))
    good[:, 2] = 9
    good[:, 0] = 0
    rng = np.random.default_rng(1)
    fitted = np.array([GeneDistribution(space, good).sample(rng) for _ in range(200)])
    uniform = np.array([GeneDistribution(space).sample(rng) for _ in range(200)])
    assert (fitted[:, 2] == 9).mean() > 0.7 and (uniform[:, 2] == 9).mean() < 0.25
    assert (fitted[:, 0] == 0).mean() > 0.8
    assert all(space.is_valid(x) for x in fitted)


@pytest.mark.parametrize("proposals", ["nsga2", "random"])
def test_ablation_arms_get_the_same_evaluations_and_adaptation_as_nat(tmp_path, monkeypatch, proposals):
    """The surrogate ablation's arms (no surrogate: NSGA-II mating on real objectives, or random) run the
    same loop: same number of new subnets, same re-evaluations, new genomes only."""
    monkeypatch.setenv("NATKIT_CACHE", str(tmp_path / "cache"))
    ctx = _ctx(tmp_path, proposals, proposals=proposals)
    nat.run(ctx)
    rows = ctx.archive.candidates(run_id=ctx.run_id)
    new = [c for c in rows if not c.extra.get("reevaluation")]
    assert len({tuple(c.encoding) for c in new}) == len(new) == 5 + 2 * 2  # initial + iterations x k, all distinct
    assert any(c.extra.get("reevaluation") for c in rows)  # the archive is re-evaluated after adaptation


def test_bad_proposals_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="proposals"):  # refused by the typed options, before any work
        _ctx(tmp_path, "bad", proposals="bayes")


def test_random_proposals_are_new_genomes(tmp_path, monkeypatch):
    """The random arm proposes genomes not yet archived even when its generator repeats earlier draws."""
    monkeypatch.setenv("NATKIT_CACHE", str(tmp_path / "cache"))
    ctx = _ctx(tmp_path, "rnd", proposals="random")
    from natkit.core.config import read_toml

    config = nat.space_config(read_toml(ctx.options.space))
    space = nat.NATSpace(config, num_classes=10, in_channels=1)

    class Loop(nat.NATLoop):
        def __init__(self):  # only what propose_random reads
            self.space, self.rng = space, np.random.default_rng(0)
            self.members = {}

    loop = Loop()
    first = space.sample(4, np.random.default_rng(0))  # what the same seed draws first
    loop.members = {nat.encode_key([int(v) for v in x]): {} for x in first}
    X = loop.propose_random(4)
    keys = {nat.encode_key([int(v) for v in x]) for x in X}
    assert len(X) == 4 and len(keys) == 4 and not keys & set(loop.members)
