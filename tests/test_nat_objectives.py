"""NAT beyond (error, macs): three objectives with measured latency (NSGA-III), and a MACs budget
written in the space TOML."""

import dataclasses

import pytest
import torch

from natkit.core.budget import Budget
from natkit.data import load_task
from natkit.methods.nat import method as nat

from test_nat_loop import TINY_TOML

torch.set_num_threads(1)

MACS_LIMIT = 150_000  # the tiny space spans 24,916 (smallest) to 490,320 (largest) MACs


def _ctx(make_ctx, tmp_path, toml, objectives):
    space = tmp_path / "nat_tiny.toml"
    space.write_text(toml)
    task = load_task("digits", seed=0, samples_per_class=15)
    return make_ctx("nat", task, seed=0, source_spec="digits", objectives=list(objectives),
                    options={"space": str(space)}, keep_models="none")


@pytest.fixture()
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NATKIT_CACHE", str(tmp_path_factory.getbasetemp() / "nat-objectives-cache"))


def test_three_objectives_with_latency_use_nsga3(tmp_path, cache, monkeypatch, make_ctx):
    from natkit.core import search

    used = []
    nsga = search.nsga

    def recording(n_obj, *args, **kwargs):
        algo = nsga(n_obj, *args, **kwargs)
        used.append(type(algo).__name__)
        return algo

    monkeypatch.setattr(search, "nsga", recording)
    objectives = ("error", "macs", "latency_ms")
    ctx = _ctx(make_ctx, tmp_path, TINY_TOML, objectives)
    nat.run(ctx)
    assert used and set(used) == {"NSGA3"}
    rows = ctx.archive.candidates(run_id=ctx.run_id)
    assert len(rows) >= 5 and all(c.latency_ms is not None and c.latency_ms > 0 for c in rows)
    front = ctx.archive.front(objectives, run_id=ctx.run_id)
    assert front and all(c.status == "ok" for c in front)
    assert set(ctx.stats["hv_bounds"]) == set(objectives) and ctx.stats["hv_bounds"]["latency_ms"][1] > 0


def test_macs_budget_from_the_space_file_holds_on_the_front(tmp_path, cache, make_ctx):
    ctx = _ctx(make_ctx, tmp_path, TINY_TOML + f"\n[budget]\nmacs = {MACS_LIMIT}\n", ("error", "macs"))
    nat.run(ctx)
    rows = ctx.archive.candidates(run_id=ctx.run_id)
    budget = Budget({"macs": MACS_LIMIT})
    # the largest subnet always enters the initial archive and is over the budget
    assert any(c.status == "infeasible" for c in rows)
    assert all((c.status == "infeasible") == (not budget.feasible({"macs": c.macs}))
               for c in rows if c.status in ("ok", "infeasible"))
    front = ctx.archive.front(("error", "macs"), run_id=ctx.run_id)
    assert front and all(c.macs <= MACS_LIMIT for c in front)
    # the surrogate search proposed mostly subnets within the budget
    proposed = [c for c in rows if c.generation > 0 and not c.extra.get("reevaluation")]
    assert proposed and sum(c.macs <= MACS_LIMIT for c in proposed) >= len(proposed) / 2


def test_optional_finetuning_archives_the_front_again(tmp_path, cache, make_ctx):
    ctx = _ctx(make_ctx, tmp_path, TINY_TOML.replace("iterations = 2", "iterations = 1") + "finetune_epochs = 1\n",
               ("error", "macs"))
    nat.run(ctx)
    rows = ctx.archive.candidates(run_id=ctx.run_id)
    tuned = [c for c in rows if c.extra.get("stage") == "finetuned"]
    searched = {tuple(c.encoding) for c in rows if not c.extra.get("stage")}
    assert tuned and all(tuple(c.encoding) in searched for c in tuned)
    assert all(0.0 <= c.error <= 1.0 and c.macs > 0 for c in tuned)
    # resuming the finished run repeats neither the loop nor the fine-tuning
    nat.run(dataclasses.replace(ctx, resume=True))
    assert len(ctx.archive.candidates(run_id=ctx.run_id)) == len(rows)
