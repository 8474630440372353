"""The evidence conventions: one statistics module, the claims registry and writer, provenance, and the
committed results/ and README agreeing with them."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from benchmarks import readme_table, verdicts
from natkit.errors import ConfigError
from natkit.report import stats
from natkit.report.claims import (REGISTRY, entry_sha256, evaluate_rule, judge, load_registry, parse_rule,
                                  write_claims)
from natkit.report.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]


def test_sd_uses_ddof_1_and_says_so():
    x = [1.0, 2.0, 4.0]
    assert stats.DDOF == 1
    assert stats.sd(x) == pytest.approx(np.std(x, ddof=1))
    assert math.isnan(stats.sd([3.0]))
    assert stats.summarize(x).fmt() == f"{np.mean(x):.2f} ± {np.std(x, ddof=1):.2f}"
    assert "n=1" in stats.summarize([3.0]).fmt()


def test_paired_is_method_minus_baseline_with_a_scipy_t_interval():
    method, baseline = [0.9, 0.8, 0.95, 0.7], [0.85, 0.82, 0.9, 0.6]
    p = stats.paired(method, baseline)
    d = np.subtract(method, baseline)
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert p.mean == pytest.approx(d.mean()) and p.lo == pytest.approx(lo) and p.hi == pytest.approx(hi)
    assert (p.above, p.equal, p.below) == (3, 0, 1) and p.sign == "method minus baseline"
    assert stats.paired(baseline, method).mean == pytest.approx(-p.mean)
    with pytest.raises(ValueError):
        stats.paired([1, 2], [1])


def test_rules_parse_and_evaluate():
    assert parse_rule("ci_low > -0.5 and ratio >= 1.8") == [("ci_low", ">", -0.5), ("ratio", ">=", 1.8)]
    assert evaluate_rule("ci_low > -0.5 and ratio >= 1.8", {"ci_low": -0.4, "ratio": 2}) is True
    assert evaluate_rule("ci_low > -0.5", {"ci_low": -0.6}) is False
    assert evaluate_rule("ci_low > 0", {}) is None  # the data cannot answer: no verdict
    assert evaluate_rule("ci_low > 0", {"ci_low": float("nan")}) is None  # n=1: no interval
    with pytest.raises(ConfigError):
        parse_rule("mean is large")


def _registry(tmp_path, rule="ci_low > 0", extra=""):
    p = tmp_path / "claims.toml"
    p.write_text(f'''[[claim]]
id = "m.a"
method = "m"
kind = "claim"
statement = "s"
statistic = "t"
split = "test"
rule = "{rule}"
seeds = [0, 1]
settings = ["x", "y"]
{extra}''')
    return load_registry(p)


def test_judge_stores_the_entry_hash_and_the_writer_merges_by_tag(tmp_path):
    reg = _registry(tmp_path)
    a = judge("m.a", {"ci_low": 0.1}, key="x", registry=reg, effect="e", n=2)
    b = judge("m.a", {"ci_low": -0.1}, key="y", registry=reg, effect="e", n=2)
    assert (a.tag, a.holds, b.holds) == ("m.a@x", True, False)
    assert a.registry_sha256 == entry_sha256(reg["m.a"])
    path = write_claims(tmp_path / "claims.json", [a, b])
    write_claims(path, [judge("m.a", {"ci_low": -1}, key="x", registry=reg, effect="e2", n=3)])
    claims = {c["tag"]: c for c in json.loads(path.read_text())["claims"]}
    assert set(claims) == {"m.a@x", "m.a@y"} and claims["m.a@x"]["holds"] is False and claims["m.a@y"]["n"] == 2
    assert _registry(tmp_path, "ci_low > 0.5")["m.a"] != reg["m.a"]  # a changed rule changes the hash
    with pytest.raises(ConfigError):
        judge("m.a", {}, key="z", registry=reg, effect="", n=0)
    with pytest.raises(ConfigError):
        judge("m.b", {}, registry=reg, effect="", n=0)


def test_registry_entries_are_complete():
    reg = load_registry(REGISTRY)
    assert len(reg) >= 20
    for cid, e in reg.items():
        assert cid.startswith(e["method"] + "."), cid
        if e["kind"] == "claim":
            assert e.get("rule") and (e.get("baselines") or e["split"] == "-" or e.get("note")), cid
            assert e.get("compute") and isinstance(e.get("baselines"), list), cid  # what each side is given


def test_a_verdict_records_the_compute_it_did_not_measure_from_the_registry(tmp_path):
    reg = _registry(tmp_path, extra='compute = { epochs = 4 }\n'
                                   'baselines = [{ name = "scratch", epochs = 6, unequal = "the baseline gets the extra" }]\n')
    filled = verdicts.judge("m.a", {"ci_low": 1.0}, key="x", registry=reg, effect="e", n=2).compute
    assert filled == {"method": {"epochs": 4},
                      "baselines": {"scratch": {"epochs": 6, "unequal": "the baseline gets the extra"}},
                      "from_registry": ["method", "baselines"]}
    measured = verdicts.judge("m.a", {"ci_low": 1.0}, key="x", registry=reg, effect="e", n=2,
                              compute={"method": {"epochs": 5}}).compute
    assert measured["method"] == {"epochs": 5} and measured["baselines"]["scratch"]["epochs"] == 6
    assert measured["from_registry"] == ["baselines"]


def test_a_verdict_on_other_seeds_than_registered_is_no_verdict(tmp_path):
    reg = _registry(tmp_path)  # seeds [0, 1]
    ok = verdicts.judge("m.a", {"ci_low": 1.0}, key="x", registry=reg, effect="e", n=2, seeds=[1, 0])
    assert ok.holds is True and ok.compute["seeds"] == [1, 0]
    fewer = verdicts.judge("m.a", {"ci_low": 1.0}, key="x", registry=reg, effect="e", n=1, seeds=[0])
    assert fewer.holds is None and "registered seeds [1] are not in the data" in fewer.effect
    more = verdicts.judge("m.a", {"ci_low": 1.0}, key="x", registry=reg, effect="e", n=3, seeds=[0, 1, 2])
    assert more.holds is None and "seeds [2] are not registered" in more.effect


def test_multi_seed_verdicts_name_their_seeds_and_judge_only_the_registered_ones():
    reg = load_registry(REGISTRY)
    for path in sorted((ROOT / "results").glob("*/claims.json")):
        for c in json.loads(path.read_text())["claims"]:
            seeds = reg[c["id"]].get("seeds")
            if c["kind"] != "claim" or not isinstance(seeds, list) or len(seeds) < 2:
                continue
            used = (c.get("compute") or {}).get("seeds")
            assert used is not None, (path, c["tag"])
            if c["holds"] is not None:
                assert sorted(used) == sorted(seeds), (path, c["tag"], used)


def test_provenance_names_commit_command_versions_cpu_and_time():
    p = provenance()
    assert set(p) >= {"commit", "dirty", "command", "versions", "cpu", "wall_s"}
    assert len(p["commit"]) == 40 and set(p["versions"]) >= {"natkit", "torch", "pymoo"}
    assert p["cpu"]["model"] and p["cpu"]["torch_threads"] >= 1


def test_every_stored_verdict_is_registered_current_and_has_provenance():
    reg = load_registry(REGISTRY)
    files = sorted((ROOT / "results").glob("*/claims.json"))
    assert files
    for path in files:
        for c in json.loads(path.read_text())["claims"]:
            assert c["id"] in reg, (path, c.get("id"))
            assert c["registry_sha256"] == entry_sha256(reg[c["id"]]), (path, c["tag"])
            commit = c["provenance"]["commit"]
            known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT).returncode == 0
            assert known, (path, c["tag"], commit)
            comp = c.get("compute") or {}
            if c["kind"] == "claim":  # what the method and every baseline were given (measured, else registered)
                assert comp.get("method"), (path, c["tag"])
                assert comp.get("baselines") or reg[c["id"]].get("baselines") == [], (path, c["tag"])


# results/ JSON that is not a benchmark's output: natkit's own run records (the run directories of the demo
# and the userdata benchmark, with their models/ and export/, and the committed deploy example), the progressive
# run stores (each run keyed by the hash of the code that made it) and the tabular benchmark's disclosed
# superseded attempt (results/tabular/README.md)
_NOT_OUTPUTS = ("quick/runs/", "userdata/runs/", "/deploy_example/", "progressive/runs.json",
                "progressive/fashion-mnist/runs.json", "tabular/first_attempt/")


def _commit_of(doc):
    if not isinstance(doc, dict):
        return None
    for key in ("provenance", "stamp"):
        if isinstance(doc.get(key), dict):
            return doc[key].get("commit")
    return doc.get("commit")


def test_every_benchmark_output_names_a_commit_of_this_repository():
    seen = 0
    for path in sorted((ROOT / "results").rglob("*.json")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "claims.json" or any(s in "/" + rel for s in _NOT_OUTPUTS):
            continue  # claims.json: each verdict carries its own provenance (checked above)
        commit = _commit_of(json.loads(path.read_text()))
        assert commit, f"{rel} has no provenance"
        commit = commit.removesuffix("-dirty")  # the tabular per-run files append the dirty flag to the commit
        known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT).returncode == 0
        assert known, (rel, commit)
        seen += 1
    assert seen > 200  # the tabular per-run files alone are 160


def test_readme_tables_and_claims_md_are_generated_from_results():
    assert readme_table.main(["--check"]) == 0
    text = (ROOT / "README.md").read_text()
    assert readme_table.results_section_lines(text) <= 40
    assert '"±"' in text and "ddof=1" in text and "method minus" in text


def test_committed_run_archives_hold_what_the_userdata_table_reports():
    """Each userdata row's validation-selected member, with its val and test error, is in the run's committed
    archive.sqlite (a fresh clone has no -wal files: an archive whose rows stayed in its log fails here)."""
    from natkit.core.archive import Archive

    data = json.loads((ROOT / "results" / "userdata" / "results.json").read_text())
    checked = 0
    for row in data["runs"]:
        sel = row.get("selected")
        if not sel:
            continue
        db = ROOT / "results" / "userdata" / "runs" / f"{row['method']}-{row['mode']}" / "archive.sqlite"
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(db.relative_to(ROOT))], cwd=ROOT,
                                 capture_output=True).returncode == 0
        assert tracked, f"{db} is not committed"
        a = Archive(db, readonly=True)
        c = a.get(sel["id"])
        a.close()
        assert c is not None and c.error == pytest.approx(sel["val_error"]), (row["method"], row["mode"])
        assert c.test_error == pytest.approx(sel["test_error"]), (row["method"], row["mode"])
        checked += 1
    assert checked >= 10
