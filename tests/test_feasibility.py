"""A budget no candidate can meet is reported before any training, with the smallest achievable counts."""

import time

import pytest

from natkit.cli import main
from natkit.core.budget import Budget
from natkit.core.feasibility import InfeasibleBudgetError, require_reachable


def test_require_reachable_names_limit_and_smallest():
    with pytest.raises(InfeasibleBudgetError, match=r"params <= 1000 cannot be met.*params 5,000, macs 20,000"):
        require_reachable(Budget({"params": 1000, "macs": 1e9}), {"params": 5000, "macs": 20000}, "a space")
    require_reachable(Budget({"params": 5000, "macs": 20000}), {"params": 5000, "macs": 20000}, "a space")
    require_reachable(Budget({"latency_ms": 0.001}), {"params": 5000, "macs": 20000}, "a space")  # not closed-form


@pytest.mark.parametrize("method", ["nat", "width", "ke"])
def test_infeasible_budget_reported_before_training_in_under_10_s(tmp_path, capsys, monkeypatch, method):
    import natkit.methods.nat.method as nat
    import natkit.train.loop as loop

    def no_training(*a, **k):
        raise AssertionError("trained before the budget was checked")

    monkeypatch.setattr(loop, "train", no_training)
    monkeypatch.setattr("natkit.methods.width.space.train", no_training)
    monkeypatch.setattr("natkit.methods.ke.method.train", no_training)
    monkeypatch.setattr(nat, "_pretrained", no_training)
    budget = tmp_path / "b.toml"
    budget.write_text('[budget]\nname = "too small"\nparams = 1000\nmacs = 2e6\n')
    t0 = time.perf_counter()
    rc = main(["search", method, "--task", "digits", "--out", str(tmp_path / "r"), "--budget", str(budget), "--quick"])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and seconds < 10, seconds
    assert "params <= 1000 cannot be met" in err[-1] and "smallest candidate" in err[-1]
    assert "params " in err[-1].split("has ")[1]
