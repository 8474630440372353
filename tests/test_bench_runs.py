"""`make bench` (benchmarks/run_all.py) runs every benchmark program with real arguments."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
NOT_CLAIMS = {"quick.py", "readme_table.py", "run_all.py"}  # the demo, the README generator, this runner


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_program_is_run_and_every_run_names_a_program():
    R = _run_all()
    programs = {p.name for p in BENCH.glob("*.py") if "__main__" in p.read_text()} - NOT_CLAIMS
    modules = {f"{p.parent.name}.{p.stem}" for p in BENCH.glob("*/*.py") if "__main__" in p.read_text()}
    listed = [s for s, _ in R.RUNS]
    assert set(listed) == programs | modules
    assert all(R.group(s) in R.GROUPS for s in listed)
    assert R.command("scale.throughput", ["--resume"])[1:] == ["-m", "benchmarks.scale.throughput", "--resume"]


def test_runs_that_read_other_runs_come_after_them():
    R = _run_all()
    labels = [" ".join([s, *a]) for s, a in R.RUNS]
    pos = {lab: i for i, lab in enumerate(labels)}
    first = lambda pred: min(i for i, lab in enumerate(labels) if pred(lab))  # noqa: E731
    last = lambda pred: max(i for i, lab in enumerate(labels) if pred(lab))  # noqa: E731
    # progressive --from reads the digits choices; tascnet_seeds gathers the seeds; lda digits merges fashion-mnist
    assert last(lambda s: s.startswith("progressive") and "--from" not in s) < first(lambda s: "--from" in s)
    assert last(lambda s: s.startswith("tascnet_transfer")) < pos["tascnet_seeds.py"]
    assert first(lambda s: s.startswith("lda_compression") and "fashion-mnist" in s) < last(
        lambda s: s.startswith("lda_compression") and "fashion-mnist" not in s)


def test_dry_run_prints_the_commands_and_runs_nothing(capsys):
    R = _run_all()
    assert R.main(["--dry-run", "--only", "lda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [" ".join([s, *a]) for s, a in R.RUNS if s.startswith("lda")]
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
