"""The perf, hardware and tabular benchmarks judge through the registry (natkit.report.claims)."""

from natkit.report.claims import entry_sha256, load_registry


def _cell(median, n=20):
    return {"hv_ratio": {"median": median, "n": n}}


def _result(nat, nsga2, n_nsga2=20):
    return {pair: {"engines": {"nat": {"100": _cell(nat)}, "nsga2": {"100": _cell(nsga2, n_nsga2)}}}
            for pair in ("error,params", "error,flops")}


def _tabular_registry():
    reg = load_registry()
    entry = dict(reg["tabular.nat_ahead_at_small_budgets"], budgets=[100], baselines=[{"name": "nsga2"}])
    return {"tabular.nat_ahead_at_small_budgets": entry}


def test_tabular_rule_reads_the_smallest_lead_and_missing_seeds_leave_no_verdict():
    from benchmarks.tabular.claims import decide_claims

    reg = _tabular_registry()
    ahead = decide_claims(_result(0.99, 0.95), {"commit": "x"}, registry=reg)[0]
    assert ahead.holds is True and abs(ahead.values["gap_min"] - 0.04) < 1e-12
    assert ahead.registry_sha256 == entry_sha256(reg["tabular.nat_ahead_at_small_budgets"])
    tie = decide_claims(_result(0.95, 0.95), {"commit": "x"}, registry=reg)[0]
    assert tie.holds is False  # margin 0: a tie is not ahead
    short = decide_claims(_result(0.99, 0.5, n_nsga2=19), {"commit": "x"}, registry=reg)[0]
    assert short.holds is None and short.values["gap_min"] is None and "missing" in short.effect


def test_perf_verdict_needs_every_case():
    from benchmarks.perf.throughput import judge_part

    kw = dict(ratios_per_round={}, images_per_s={}, rounds=5, threads=1, images=512, prov={"commit": "x"},
              source="results/perf/throughput.json")
    assert judge_part("train", {"a@64": 1.2, "b@64": 0.96}, **kw).holds is True
    bad = judge_part("evaluate", {"a@64": 1.2, "b@64": 0.94}, **kw)
    assert bad.holds is False and bad.values["ratio_min"] == 0.94 and bad.id == "perf.throughput.evaluate"


def test_hardware_verdict_and_provenance_come_from_the_stored_run():
    from benchmarks.hardware.latency import judge_latency

    overall = {"n": 3, "tau": 0.95, "med_err": 0.12, "tau_macs": 0.3, "tau_uncalibrated": 0.8,
               "med_err_uncalibrated": 0.2, "tau_retest": 0.9}
    c = judge_latency({"overall": overall, "commit": "abc", "dirty": False, "command": "python -m x"}, "f.json")
    assert c.holds is False  # tau passes, the median error does not
    assert c.provenance["commit"] == "abc" and c.provenance["source_provenance"]["command"] == "python -m x"
    assert judge_latency({"overall": {**overall, "med_err": 0.1}, "commit": "abc"}, "f.json").holds is True
