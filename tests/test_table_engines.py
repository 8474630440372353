"""Engines on table tasks: exact budgets, budget-independence (prefix), resume, the CLI end to end."""

import itertools
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from natkit.data.table import load_table, load_table_task
from natkit.tabular import search

ROOT = Path(__file__).resolve().parents[1]
MACRO_JSON = "/work/shared/data/nas-bench-macro/nas-bench-macro_cifar10.json"
if not Path(MACRO_JSON).is_file():  # the packaged copy is the same file
    MACRO_JSON = str(ROOT / "natkit" / "data" / "tables" / "nas-bench-macro_cifar10.json")


def sweep_table(folder: Path) -> Path:
    """A generic CSV + TOML sweep the project has never seen: 4 positions x 3 ops (81 rows), 2 runs each,
    error as a fraction, params and a device latency."""
    rng = np.random.default_rng(0)
    lines = ["arch,err_1,err_2,n_params,latency_pi"]
    for genes in itertools.product("abc", repeat=4):
        size = sum({"a": 1, "b": 3, "c": 6}[g] * (i + 1) for i, g in enumerate(genes))
        err = 0.5 / (1 + 0.1 * size) + rng.normal(0, 0.01, 2)
        lines.append(f"{'-'.join(genes)},{err[0]:.4f},{err[1]:.4f},{1000 * size},{2.5 * size:.2f}")
    (folder / "sweep.csv").write_text("\n".join(lines) + "\n")
    (folder / "sweep.toml").write_text("""[table]
name = "sweep"
file = "sweep.csv"

[genes]
key = "arch"
separator = "-"
alphabet = ["a", "b", "c"]
length = 4

[metrics]
error = ["err_1", "err_2"]
scale = 1

[costs]
params = "n_params"
latency_pi = "latency_pi"
""")
    return folder / "sweep.toml"


def run_lib(make_ctx, tmp_path, spec, engine, budget, seed=0, objectives=("error", "params"), name="r"):
    task = load_table_task(spec)
    ctx = make_ctx(engine, task, out_dir=tmp_path / name, seed=seed, objectives=list(objectives),
                   options={"evaluations": budget, "pop_size": 8})
    table_run, _ = search(ctx, engine)
    rows = [task.table.row(e) for e, _, _ in table_run.seen.values()]
    return rows, table_run, ctx.archive


@pytest.mark.parametrize("engine", ["nat", "nsga", "random"])
def test_budget_is_exact_and_a_shorter_run_is_a_prefix(tmp_path, engine, make_ctx):
    spec = f"table:{sweep_table(tmp_path)}"
    short, run_s, _ = run_lib(make_ctx, tmp_path, spec, engine, 23, name="short")
    long, run_l, archive = run_lib(make_ctx, tmp_path, spec, engine, 41, name="long")
    assert len(short) == len(set(short)) == 23 and run_s.problem.n_real == 23
    assert len(long) == len(set(long)) == 41 and run_l.problem.n_real == 41
    assert len(archive.candidates()) == 41  # every query archived once
    assert long[:23] == short  # the budget only decides where to stop
    again, _, _ = run_lib(make_ctx, tmp_path, spec, engine, 23, name="again")
    assert again == short  # same seed, same queries
    other, _, _ = run_lib(make_ctx, tmp_path, spec, engine, 23, seed=1, name="other")
    assert other != short


def test_nat_beats_random_on_nas_bench_macro_at_60_evaluations(tmp_path, make_ctx):
    """Not the benchmark (20 seeds there): a sanity check that the surrogate loop finds more of the exact
    front than random sampling with the same budget, on two seeds."""
    for seed in (0, 1):
        _, nat, _ = run_lib(make_ctx, tmp_path, "table:nas-bench-macro", "nat", 60, seed=seed, name=f"n{seed}")
        _, rnd, _ = run_lib(make_ctx, tmp_path, "table:nas-bench-macro", "random", 60, seed=seed, name=f"r{seed}")
        assert nat.log[-1]["hv_ratio"] > rnd.log[-1]["hv_ratio"]
        assert nat.log[-1]["exact_found"] > rnd.log[-1]["exact_found"]


def cli(*args, timeout=300):
    """Result and CPU seconds of a natkit command (CPU time: wall time on this shared host says little)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-m", "natkit.cli", *args], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_cli_nat_on_nas_bench_macro_front_members_are_table_entries(tmp_path):
    out = tmp_path / "D"
    r, seconds = cli("search", "nat", "--task", f"table:{MACRO_JSON}", "--objectives", "error,params",
                     "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert seconds < 40  # CPU seconds, imports included: the check is under a minute on 2 cores
    run = json.loads((out / "run.json").read_text())
    assert run["stats"]["evaluations"] == run["stats"]["real_evaluations"] == 100
    assert run["stats"]["hv_ratio"] > 0.9
    r, _ = cli("front", str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    front_json = r.stdout
    members = [json.loads(line) for line in front_json.splitlines()]
    assert len(members) >= 5
    raw = json.loads(Path(MACRO_JSON).read_text())
    for m in members:
        entry = raw[m["arch"]["key"]]
        assert m["params"] == entry["params"] and m["flops"] == entry["flops"]
        assert any(abs(m["error"] - (1 - a / 100)) < 1e-9 for a in entry["test_acc"])
        assert m["error_mean"] == pytest.approx(1 - entry["mean_acc"] / 100)
        assert "".join(str(v) for v in m["encoding"]) == m["arch"]["key"]
    log = json.loads((out / "table_log.json").read_text())
    assert all({"hv_ratio", "igd"} <= set(g) for g in log["generations"])
    # --resume of a finished run repeats nothing and keeps the front
    r, _ = cli("search", "nat", "--out", str(out), "--resume", "-q")
    assert r.returncode == 0, r.stderr
    run2 = json.loads((out / "run.json").read_text())
    assert run2["stats"]["real_evaluations"] == 0 and run2["stats"]["evaluations"] == 100
    r2, _ = cli("front", str(out), "--format", "json")
    assert r2.stdout == front_json


def test_generic_table_runs_through_the_same_commands(tmp_path):
    spec = f"table:{sweep_table(tmp_path)}"
    table = load_table(spec[len("table:"):])
    for engine in ("nat", "nsga", "random"):
        out = tmp_path / engine
        r, _ = cli("search", engine, "--task", spec, "--objectives", "error,latency_pi", "--option",
                   "evaluations=30", "--pop-size", "10", "--out", str(out), "-q")
        assert r.returncode == 0, r.stderr
        r, _ = cli("front", str(out), "--format", "json")
        members = [json.loads(line) for line in r.stdout.splitlines()]
        assert members
        for m in members:
            row = table.row(m["encoding"])
            assert table.keys[row] == m["arch"]["key"]
            assert m["latency_pi"] == table.costs["latency_pi"][row] and m["params"] == table.costs["params"][row]
            assert m["error"] in table.error_runs[row].tolist()
        for cmd in ("plot", "report"):
            r, _ = cli(cmd, str(out))
            assert r.returncode == 0, r.stderr
        assert (out / "front.png").is_file() and (out / "summary.md").is_file()
    r, _ = cli("search", "random", "--task", spec, "--option", "evaluations=30", "--option", "k=3",
               "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "unknown random option 'k'" in r.stderr
