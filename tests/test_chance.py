"""No silent chance: at-chance candidates are flagged, named in the log, kept off fronts; a run whose
every candidate is at chance exits 3."""

import numpy as np
import pytest

from natkit.core.archive import Archive
from natkit.core.budget import Budget
from natkit.core.chance import ChanceLevel, all_at_chance, chance_summary
from natkit.core.evaluator import Evaluator
from natkit.core.problem import ArchiveProblem
from natkit.core.space import SearchSpace


def test_chance_level_from_priors_and_binomial_margin():
    balanced = ChanceLevel.from_labels(np.repeat([0, 1], 16))
    assert balanced.chance_error == 0.5
    assert balanced.threshold_error == pytest.approx(9 / 32)  # 23 of 32 right is the 99% quantile
    assert balanced.at_chance(0.30) and balanced.at_chance(0.5) and not balanced.at_chance(0.25)
    skewed = ChanceLevel.from_labels(np.array([0] * 90 + [1] * 10))
    assert skewed.chance_error == pytest.approx(0.1)  # "always class 0" is right 90% of the time
    assert skewed.at_chance(0.1) and not skewed.at_chance(0.02)
    big = ChanceLevel.from_labels(np.repeat(np.arange(10), 200))
    assert 0.88 < big.threshold_error < 0.9  # more val images, a tighter margin


class Space(SearchSpace):
    xl, xu = np.array([0]), np.array([3])


class Fixed(Evaluator):
    """Gene 0 and 1 learn nothing (50% error on a balanced 2-class val split), 2 and 3 learn."""
    errors = {0: 0.5, 1: 0.45, 2: 0.1, 3: 0.05}

    def _evaluate(self, enc):
        return {"error": self.errors[enc[0]], "params": 100 + 10 * enc[0], "macs": 1000 + 10 * enc[0]}, {}, {}


def test_at_chance_rows_are_flagged_logged_and_off_the_front(tmp_path):
    archive = Archive(tmp_path / "a.sqlite")
    run_id = archive.start_run("t", "toy", {"objectives": "error,params"}, 0)
    level = ChanceLevel.from_labels(np.repeat([0, 1], 20))  # n = 40: errors >= 30% are noise
    lines = []
    prob = ArchiveProblem(Space(), Fixed(), ["error", "params"], Budget(), archive, run_id, "t", "k",
                          chance=level, log=lines.append)
    prob._evaluate(np.array([[0], [1], [2], [3]]), {})
    by_gene = {c.encoding[0]: c for c in archive.candidates(run_id=run_id)}
    assert by_gene[0].extra.get("chance") and by_gene[1].extra.get("chance")
    assert not by_gene[2].extra.get("chance") and not by_gene[3].extra.get("chance")
    assert by_gene[0].status == "ok"  # the row is kept, only flagged
    assert any(f"candidate {by_gene[0].id} is at chance" in ln for ln in lines)
    # the at-chance rows have the fewest params: unflagged, they would sit on the (error, params) front
    front_ids = {c.id for c in archive.front(["error", "params"], run_id=run_id)}
    assert front_ids == {by_gene[2].id, by_gene[3].id}
    assert len(archive.front(["error", "params"], run_id=run_id, include_chance=True)) == 4
    summary = chance_summary(archive, run_id, level, lines.append)
    assert summary["at_chance"] == 2 and not all_at_chance(archive, run_id)


def test_report_and_summary_leave_chance_rows_out(tmp_path):
    from natkit.report.summary import summarise

    archive = Archive(tmp_path / "a.sqlite")
    run_id = archive.start_run("t", "toy", {}, 0)
    level = ChanceLevel.from_labels(np.repeat([0, 1], 20))
    prob = ArchiveProblem(Space(), Fixed(), ["error", "macs"], Budget(), archive, run_id, "t", "k", chance=level)
    prob._evaluate(np.array([[0], [1], [2], [3]]), {})
    (row,) = summarise(archive)
    assert row["at_chance"] == 2 and row["front_size"] == 2 and row["ok"] == 2


def test_all_chance_run_exits_3_with_one_line(tmp_path, capsys):
    from natkit.cli import main

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    rng.shuffle(y)  # labels independent of the pixels: nothing to learn
    np.savez(tmp_path / "noise.npz", x=rng.random((120, 10, 10)).astype("float32"), y=y)
    (tmp_path / "w.toml").write_text('[space]\nfamily = "vgg_widths"\nlayers = 1\npool_after = [1]\n'
                                     'choices = [4, 6]\nhidden = 8\nresolution = 10\n[train]\nepochs = 1\n')
    rc = main(["search", "width", "--task", f"npz:{tmp_path / 'noise.npz'}", "--out", str(tmp_path / "r"),
               "--space", str(tmp_path / "w.toml"), "--generations", "1", "--pop-size", "2"])
    err = capsys.readouterr().err
    assert rc == 3
    last = [ln for ln in err.splitlines() if ln.startswith("natkit:")]
    assert len(last) == 1 and "at chance" in last[0]
    assert "warning: candidate" in err
    archive = Archive(tmp_path / "r" / "archive.sqlite")
    assert archive.front(["error", "macs"]) == [] and archive.candidates(status="ok")


def test_all_at_chance_counts_the_part_of_a_shared_search_another_process_measured(tmp_path):
    from natkit.core.archive import Archive
    from natkit.core.chance import FLAG, all_at_chance

    a = Archive(tmp_path / "a.sqlite")
    mine, other = a.start_run("width", "digits", {}, 0), a.start_run("width", "digits", {}, 0)
    a.add(mine, "width", generation=0, encoding=[1], metrics={"error": 0.9}, eval_key="k", extra={FLAG: True})
    assert all_at_chance(a, mine)  # everything this search saw is at chance
    a.add(other, "width", generation=0, encoding=[2], metrics={"error": 0.1}, eval_key="k")
    assert not all_at_chance(a, mine)  # the other process's part of the same search learned something
    a.add(other, "width", generation=0, encoding=[3], metrics={"error": 0.1}, eval_key="unrelated")
    assert not all_at_chance(a, other)
