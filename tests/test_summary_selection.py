"""The quick table selects each method's member on validation and reports that member's test error."""

import json
from pathlib import Path

import pytest

from natkit.core.archive import Archive
from natkit.report.summary import select_on_validation, summarise, summary_markdown

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"


def _add(archive, run, method, error, macs, test):
    cid = archive.add(run, method, generation=0, encoding=[int(error * 1000), int(macs)], arch={}, status="ok",
                      metrics={"error": error, "macs": macs, "params": macs / 10}, test_error=test)
    return cid


def test_member_is_picked_on_validation_not_on_test(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("m", "digits", {}, 0)
    low_val = _add(a, run, "m", 0.010, 2e6, 0.030)  # lowest val error, worse test error
    _add(a, run, "m", 0.015, 1e6, 0.005)  # best test error: must not be reported
    _add(a, run, "m", 0.040, 5e5, 0.050)
    (row,) = summarise(a)
    assert row["chosen_id"] == low_val
    assert row["test_error"] == pytest.approx(0.030) and row["val_error"] == pytest.approx(0.010)
    assert row["min_macs_within_1pt_val"] == 1e6  # val 0.015 <= 0.010 + 0.01; val 0.040 is not
    assert "3.00%" in summary_markdown([row], "a.sqlite")


def test_select_on_validation_breaks_ties_by_macs(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("m", "digits", {}, 0)
    _add(a, run, "m", 0.02, 3e6, 0.01)
    cheap = _add(a, run, "m", 0.02, 1e6, 0.04)
    assert select_on_validation(a.candidates(method="m")).id == cheap
    assert select_on_validation([]) is None


@pytest.mark.skipif(not (QUICK / "archive.sqlite").is_file(), reason="no committed quick archive")
def test_committed_quick_table_is_the_validation_selected_members():
    """For every method: summary.json's test error is that of the lowest-val-error front member in the archive."""
    rows = {r["method"]: r for r in json.loads((QUICK / "summary.json").read_text())["methods"]}
    archive = Archive(QUICK / "archive.sqlite", readonly=True)
    methods = {c.method for c in archive.candidates()}
    assert set(rows) == methods
    for m in methods:
        front = archive.front(("error", "macs"), method=m)
        best = min(c.error for c in front)
        tied = [c for c in front if c.error == best]
        member = min(tied, key=lambda c: c.macs)
        assert rows[m]["test_error"] == member.test_error, m
        assert rows[m]["val_error"] == member.error, m
    md = (QUICK / "summary.md").read_text()
    assert "test error (val-selected)" in md and "best test error" not in md
