"""Knowledge Evolution: the generation loop, the evaluator's per-generation records, a tiny run."""

import json

import pytest
import torch

import natkit.methods.ke.method as ke
from natkit.core.archive import Archive
from natkit.data import load_task
from natkit.errors import ConfigError
from natkit.methods.ke.split import kels_masks
from natkit.nets import create_model
from natkit.train import TrainConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return load_task("digits", seed=0, samples_per_class=6)


def test_generation_step_keeps_fit_weights_and_draws_new_reset_weights(task, monkeypatch):
    torch.manual_seed(0)
    model = create_model("vgg_tiny", num_classes=10, in_channels=1)
    masks = kels_masks(model, 0.5, in_channels=1, resolution=8)
    starts, ends = [], []
    real_train = ke.train

    def recording_train(m, *a, **kw):
        starts.append({k: v.clone() for k, v in m.state_dict().items()})
        out = real_train(m, *a, **kw)
        ends.append({k: v.clone() for k, v in m.state_dict().items()})
        return out

    monkeypatch.setattr(ke, "train", recording_train)
    gens = ke.evolve(model, task, 0.5, 3, TrainConfig(epochs=1, max_batches=2, batch_size=16), seed=1)
    assert [g.generation for g in gens] == [1, 2, 3] and len(starts) == 3
    for g in (1, 2):  # generation g+1 starts from generation g's last weights, reset part re-drawn
        before, after = ends[g - 1], starts[g]
        for name, split in masks.layers.items():
            w0, w1 = before[f"{name}.weight"], after[f"{name}.weight"]
            assert torch.equal(w0[split.weight], w1[split.weight])
            assert (w0[~split.weight] != w1[~split.weight]).all()
        bn_keys = [k for k in before if "running" in k]
        assert bn_keys and all(torch.equal(before[k], after[k]) for k in bn_keys)
    assert all(g.slim is not None and 0 <= g.slim["error"] <= 1 for g in gens)


def test_earlier_generations_equal_shorter_runs(task):
    """Archiving generation g < G under (s, g, e) is only right if a g-generation run gives the same."""
    space = ke.KESpace(rates=(0.5,), generations=(1, 2), epochs=(1, 1))
    ev = ke.KEEvaluator(task, space, "vgg_tiny", {}, TrainConfig(max_batches=2, batch_size=16), seed=3)
    metrics2, arch2, extra2, _ = ev._evaluate([0, 2, 1])
    metrics1, _, extra1, _ = ev._evaluate([0, 1, 1])
    (enc, m, _, info, _), = extra2["_also"]["slim"]
    assert enc == [0, 1, 1] and info["ke_generation"] == 1 and info["variant"] == "slim"
    assert m["error"] == metrics1["error"] and m["macs"] == metrics1["macs"]
    dense = extra2["_also"]["dense"]
    assert [d[3]["ke_generation"] for d in dense] == [1, 2]
    assert dense[0][1]["macs"] > metrics2["macs"]  # the slim network is cheaper than the dense one
    assert arch2["kwargs"]["cfg"] == [2, "M", 4, "M"]  # vgg_tiny [4, M, 8, M] at width 0.5


def test_space_decodes_and_rejects_bad_ranges():
    space = ke.KESpace(rates=(0.25, 0.5, 0.75), generations=(1, 4), epochs=(2, 3))
    assert space.decode([1, 4, 2]) == {"split_rate": 0.5, "generations": 4, "epochs": 2}
    assert space.decode([9, 0, 9]) == {"split_rate": 0.75, "generations": 1, "epochs": 3}  # clipped
    assert space.encode(0.5, 3, 2) == [1, 3, 2]
    with pytest.raises(ConfigError):
        ke.KESpace(rates=(0.0, 0.5))
    with pytest.raises(ConfigError):
        ke.KESpace(generations=(0, 3))


def _ctx(make_ctx, task, tmp_path, name, **options):
    return make_ctx("ke", task, out_dir=tmp_path / name, archive=tmp_path / f"{name}.sqlite", seed=0,
                    objectives=["error", "params", "macs"], quick=True,
                    options={"model": "vgg_tiny", "max_generations": 2, "generations": 1, "pop_size": 3, **options})


def test_tiny_ke_run_writes_an_archive_with_every_generation(task, tmp_path, make_ctx):
    ctx = _ctx(make_ctx, task, tmp_path, "a")
    assert ctx.out_dir.is_dir()
    ke.run(ctx)
    cands = ctx.archive.candidates(run_id=ctx.run_id)
    assert cands and all(c.method == "ke" for c in cands)
    variants = {(c.extra["variant"], c.extra["ke_generation"]) for c in cands}
    top = max(c.extra["ke_generation"] for c in cands)
    # every generation g <= G of an evaluation is archived, dense and slim
    for g in range(1, top + 1):
        assert ("slim", g) in variants and ("dense", g) in variants
    slim = [c for c in cands if c.extra["variant"] == "slim"]
    dense = [c for c in cands if c.extra["variant"] == "dense"]
    assert max(c.macs for c in slim) < min(c.macs for c in dense)
    front = ctx.archive.front(["error", "params", "macs"], run_id=ctx.run_id)
    assert front and any(c.test_error is not None for c in front)
    rows = [json.loads(line) for line in ctx.archive.to_json(front).splitlines()]
    assert {r["method"] for r in rows} == {"ke"}
    # same seed, same settings: the same numbers
    ctx2 = _ctx(make_ctx, task, tmp_path, "b")
    assert ctx2.out_dir.is_dir()
    ke.run(ctx2)
    again = sorted((c.encoding, c.extra["variant"], c.error) for c in ctx2.archive.candidates(run_id=ctx2.run_id))
    assert again == sorted((c.encoding, c.extra["variant"], c.error) for c in cands)


def test_wels_run_archives_dense_candidates(task, tmp_path, make_ctx):
    ctx = _ctx(make_ctx, task, tmp_path, "w", split="wels")
    assert ctx.out_dir.is_dir()
    ke.run(ctx)
    cands = ctx.archive.candidates(run_id=ctx.run_id)
    assert cands and {c.extra["variant"] for c in cands} == {"dense"}
    assert {c.extra["mode"] for c in cands} == {"wels"}


def test_bad_options_are_config_errors(task, tmp_path, make_ctx):
    with pytest.raises(ConfigError):
        ke.run(_ctx(make_ctx, task, tmp_path, "x", split="both"))
    with pytest.raises(ConfigError):
        ke.run(_ctx(make_ctx, task, tmp_path, "y", rate_min=0.9, rate_max=0.2))
