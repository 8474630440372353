"""The one archive writer: look-up before evaluation, the budget, the status enum, model saving."""

from __future__ import annotations

import pytest

from natkit.core.archive import Archive, Status
from natkit.core.budget import Budget
from natkit.core.evaluator import EvalResult
from natkit.core.writer import ArchiveWriter


def _writer(tmp_path, budget=None):
    a = Archive(tmp_path / "a.sqlite")
    return ArchiveWriter(a, a.start_run("m", "t", {}, 0), "m", budget or Budget({}), tmp_path / "models")


def test_existing_row_is_returned_not_evaluated_or_added_again(tmp_path):
    w = _writer(tmp_path)
    calls = []

    def evaluate():
        calls.append(1)
        return EvalResult({"error": 0.2, "params": 10, "macs": 100})

    first = w.write([1, 2], evaluate, eval_key="k")
    again = w.write([1, 2], evaluate, eval_key="k")
    assert not first.reused and again.reused and again.id == first.id and calls == [1]
    assert again.metrics["error"] == 0.2 and len(w.archive.candidates()) == 1
    assert not w.write([1, 2], evaluate, eval_key="other").reused  # another evaluation key is another result


def test_budget_turns_ok_into_infeasible_for_side_rows_too(tmp_path):
    w = _writer(tmp_path, Budget({"params": 50}))
    big = w.side_row(["base"], eval_key="k", metrics={"error": 0.1, "params": 100, "macs": 1})
    small = w.side_row(["pruned"], eval_key="k", metrics={"error": 0.1, "params": 20, "macs": 1})
    assert (big.status, small.status) == ("infeasible", "ok")
    assert [c.id for c in w.archive.front(("error", "params"))] == [small.id]


def test_models_are_saved_unless_the_evaluation_failed(tmp_path):
    from natkit.nets import create_model

    w = _writer(tmp_path)
    model = create_model("vgg_tiny", num_classes=3, in_channels=1)
    ok = w.write([1], EvalResult({"error": 0.5, "params": 1, "macs": 1}, model.natkit_arch, model=model), eval_key="k")
    failed = w.write([2], EvalResult({}, None, "failed", "boom", model=model), eval_key="k")
    assert (tmp_path / "models" / str(ok.id) / "arch.json").is_file()
    assert not (tmp_path / "models" / str(failed.id)).exists() and failed.status == "failed"


def test_archive_accepts_every_status_and_only_those(tmp_path):
    a = Archive(tmp_path / "a.sqlite")
    run = a.start_run("m", "t", {}, 0)
    for s in Status:
        a.add(run, "m", generation=0, encoding=[s.value], metrics={"error": 0.1, "macs": 1}, status=s)
    assert sorted(c.status for c in a.candidates()) == sorted(s.value for s in Status)
    with pytest.raises(ValueError, match="bad status 'done'"):
        a.add(run, "m", generation=0, encoding=[9], status="done")
