"""benchmarks/tascnet/verdicts.py judges the registered TASCNet claims from stored per-seed transfer.json files:
the registered seeds only, the registry entry's hash, and no verdict while a registered seed is missing."""

import json

import pytest

from benchmarks.tascnet import verdicts as V
from natkit.report.claims import entry_sha256, load_registry


def _seed_file(seed: int, ours: float, width: float, l1_gap: float = 0.004) -> dict:
    conv = {"test_acc": 0.95, "val_acc": 0.95, "params": 80_000, "macs": 7_000_000, "seconds": 10.0, "epochs": 13}
    member_macs = 1_000_000 + 10_000 * seed
    return {"setting": {"seed": seed}, "nets": {"vgg_small": {
        "search_seconds": 100.0,
        "picked": {"test_acc": ours, "params": 9_000, "macs": member_macs},
        "conventional": [conv, {**conv, "test_acc": 0.97, "seconds": 15.0}],
        "width_same_time": {"time_limit": 100.0, "search_seconds": 120.0, "overrun": 0.2, "real_evaluations": 24,
                            "options": {"epochs": 3.0},
                            "member": {"id": 5, "test_acc": width, "macs": 0.9 * member_macs}},
        "stage2_vs_l1": [
            {"ours_macs": 2e6, "l1_macs": 2e6 * (1 + l1_gap), "ours_test_acc": ours, "l1_test_acc": ours - 0.01},
            {"ours_macs": 1e6, "unmatched": "L1 pruning cannot reach 1,000,000 MACs within 1%"}]}}}


def _store(root, files):
    for seed, data in files.items():
        rel = "results/tascnet/transfer.json" if seed == 0 else f"results/tascnet/seeds/seed{seed}/transfer.json"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def _by_tag(results):
    return {r.tag: r for r in results}


@pytest.mark.parametrize("ours,width,holds", [(0.97, 0.95, True), (0.93, 0.98, False)])
def test_width_and_l1_claims_are_judged_on_the_registered_seeds(tmp_path, monkeypatch, ours, width, holds):
    monkeypatch.setattr(V, "ROOT", tmp_path)
    jitter = [0.0, 0.003, -0.003, 0.006, -0.006]
    _store(tmp_path, {s: _seed_file(s, ours + jitter[s], width - jitter[s]) for s in range(5)})
    _store(tmp_path, {7: _seed_file(7, 0.5, 0.99)})  # a seed no entry registers: never used
    res = _by_tag(V.derive())
    reg = load_registry()
    w = res["tascnet.vs_width_same_wall_time@vgg_small"]
    n = len(reg["tascnet.vs_width_same_wall_time"]["seeds"])  # stored seeds 0-4; only the registered ones count
    assert w.holds is holds and w.n == n and w.values["width_missing"] == 0
    assert w.values["mean"] == pytest.approx(100 * (ours - width), abs=1e-9)
    assert w.registry_sha256 == entry_sha256(reg["tascnet.vs_width_same_wall_time"])
    assert w.compute["baselines"]["width same wall time"]["overrun_max"] == pytest.approx(0.2)
    l1 = res["tascnet.stage2_vs_l1@vgg_small"]
    assert l1.holds is True and l1.values["n_unmatched"] == len(reg["tascnet.stage2_vs_l1"]["seeds"])
    assert l1.values["macs_gap_max"] <= 0.01
    assert res["tascnet.vs_width_same_wall_time@resnet_small"].holds is None  # no run of that network


def test_a_missing_registered_seed_or_unmatched_macs_give_no_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(V, "ROOT", tmp_path)
    seeds = load_registry()["tascnet.vs_width_same_wall_time"]["seeds"]
    _store(tmp_path, {s: _seed_file(s, 0.97 + 0.001 * s, 0.95) for s in seeds[:-1]})
    res = _by_tag(V.derive())
    w = res["tascnet.vs_width_same_wall_time@vgg_small"]
    assert w.holds is None and f"[{seeds[-1]}]" in w.effect
    deeper_seeds = load_registry()["tascnet.transfer.vs_deeper"]["seeds"]
    assert res["tascnet.transfer.vs_deeper@vgg_small"].holds is None or deeper_seeds[-1] != seeds[-1]
    _store(tmp_path, {s: _seed_file(s, 0.97 + 0.001 * s, 0.95) for s in deeper_seeds})
    assert _by_tag(V.derive())["tascnet.transfer.vs_deeper@vgg_small"].holds is True  # all its seeds are there
    _store(tmp_path, {s: _seed_file(s, 0.97 + 0.001 * s, 0.95, l1_gap=-0.04) for s in range(5)})
    l1 = _by_tag(V.derive())["tascnet.stage2_vs_l1@vgg_small"]
    assert l1.holds is None and l1.values["macs_gap_max"] == pytest.approx(0.04) and "cannot answer" in l1.effect
