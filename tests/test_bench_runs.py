"""`make bench` (benchmarks/run_all.py) runs every benchmark module with real arguments, and every
file under results/ is written by one of its runs."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from benchmarks import run_all as R

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
NOT_RUNS = {"benchmarks.run_all", "benchmarks.code_audit"}  # this runner; an audit of results/ that writes nothing


def _modules():
    out = set()
    for p in BENCH.rglob("*.py"):
        if "__main__" in p.read_text():
            out.add(".".join(p.relative_to(ROOT).with_suffix("").parts))
    return out - NOT_RUNS


def test_every_benchmark_module_is_run_and_every_run_names_a_module():
    listed = [m for m, _, _ in R.RUNS]
    assert set(listed) == _modules()
    assert all(R.group(m) in R.GROUPS for m in listed)


def test_every_results_file_names_a_run():
    files = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    files += [str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*") if p.is_file()]
    orphans = sorted({f for f in files if R.run_for(f) is None})
    assert not orphans, f"results files no run in benchmarks/run_all.py writes: {orphans[:10]}"


def test_runs_that_read_other_runs_come_after_them():
    labels = [" ".join([m, *a]) for m, a, _ in R.RUNS]
    first = lambda pred: min(i for i, lab in enumerate(labels) if pred(lab))  # noqa: E731
    last = lambda pred: max(i for i, lab in enumerate(labels) if pred(lab))  # noqa: E731
    # progressive --from reads the digits choices; tascnet seeds gathers the seeds; verdicts and tables come last
    assert last(lambda s: s.startswith("benchmarks.progressive") and "--from" not in s) < first(lambda s: "--from" in s)
    assert last(lambda s: s.startswith("benchmarks.tascnet.transfer")) < labels.index("benchmarks.tascnet.seeds")
    assert labels[-2:] == ["benchmarks.verdicts", "benchmarks.readme_table"]


def test_dry_run_prints_the_commands_and_runs_nothing(capsys):
    assert R.main(["--dry-run", "--only", "lda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [" ".join(["python -m", m, *a]) for m, a, _ in R.RUNS if m.startswith("benchmarks.lda")]
    assert len(out) == 3 and sys.executable not in " ".join(out)


def test_demo_lanes_keep_nat_alone_and_the_source_sharing_searches_together():
    spec = importlib.util.spec_from_file_location("quick", BENCH / "quick.py")
    Q = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(Q)
    everything = Q.lanes_for(Q.ALL, 2)
    assert everything[0] == ["nat"] and sorted(sum(everything, [])) == sorted(Q.ALL)
    assert {"tascnet", "progressive", "ke", "lda"} <= set(everything[1])
    assert Q.lanes_for(Q.ALL, 1) == [Q.ALL]
    assert Q.lanes_for(["width", "random"], 2) == [["width", "random"]]  # nothing to put beside them
    assert Q.lanes_for(["nat", "width"], 2) == [["nat"], ["width"]]


def test_no_sys_path_edits_in_benchmarks_or_tests():
    edits = ["sys.path." + verb for verb in ("insert", "append")]  # spelled apart so this file is not a hit
    for p in [*BENCH.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        text = p.read_text()
        assert not any(e in text for e in edits), p
