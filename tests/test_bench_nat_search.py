"""The NAT surrogate ablation benchmark resumes per seed and reports NAT minus each arm."""

import json

import pytest

from benchmarks.nat import common, search


def _seed(s, hv):
    arms = {a: {"hv": [0.9, h], "n_new": [6, 18], "n_real": [6, 60], "real_evaluations": 60, "distinct_subnets": 18,
                "adapt_epochs": 1.5, "seconds": 1.0} for a, h in zip(search.ARMS, hv)}
    return {"seed": s, "arms": arms, "settings": search.BENCH, "warmup_epochs": 2.0}


def test_stored_seeds_are_skipped_and_the_report_pairs_nat_with_each_arm(tmp_path, monkeypatch):
    monkeypatch.setattr(search, "SEEDS_DIR", tmp_path / "seeds")
    monkeypatch.setattr(search, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    from benchmarks.nat import verdicts

    monkeypatch.setattr(verdicts, "update", lambda: None)
    (tmp_path / "seeds").mkdir()
    for s, hv in ((0, (1.05, 1.00, 1.01)), (1, (1.04, 1.02, 1.00)), (2, (1.06, 1.01, 1.03))):
        (tmp_path / "seeds" / f"seed{s}.json").write_text(json.dumps(_seed(s, hv)))
    # a complete seed is not run again (no task, no supernet: this would fail if it tried)
    assert search.run_seed(0, 2.0, log=lambda m: None)["seed"] == 0
    with pytest.raises(SystemExit, match="other settings"):
        search.run_seed(0, 3.0, log=lambda m: None)
    search.report()
    out = json.loads((tmp_path / "search.json").read_text())
    assert out["seeds"] == [0, 1, 2]
    d = out["paired_nat_minus"]["nsga2"]
    assert d["mean"] == pytest.approx((0.05 + 0.02 + 0.05) / 3) and d["sign"] == "method minus baseline"
    assert d["lo"] < d["mean"] < d["hi"]
    assert out["provenance"]["commit"]
