"""Table tasks: loading both formats, strict validation, exact fronts, the query protocol."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from natkit.data.table import load_table, load_table_task
from natkit.errors import ConfigError
from natkit.tabular.indicators import TableScorer, exact_front

MACRO_JSON = Path(__file__).resolve().parents[1] / "natkit" / "data" / "tables" / "nas-bench-macro_cifar10.json"


@pytest.fixture(scope="module")
def macro():
    return load_table("nas-bench-macro")


def write_toy(folder: Path, *, rows=None, toml_extra="", costs='params = "n_params"\nlatency_cpu = "lat"',
              metrics='accuracy = ["acc_a", "acc_b"]\nscale = 100') -> Path:
    """A generic CSV + TOML table: 2 positions x {conv, skip, pool} x {16, 32} channels = 6 rows."""
    if rows is None:
        rows = []
        for i, op in enumerate(["conv", "skip", "pool"]):
            for j, ch in enumerate(["16", "32"]):
                acc = 60 + 10 * (i == 0) + 5 * j
                rows.append([op, ch, acc, acc + 1, 1000 * (1 + j) * (3 - i), 1.0 + i + j])
    lines = ["op,width,acc_a,acc_b,n_params,lat"] + [",".join(str(v) for v in r) for r in rows]
    (folder / "sweep.csv").write_text("\n".join(lines) + "\n")
    toml = folder / "sweep.toml"
    toml.write_text(f"""[table]
name = "toy"
file = "sweep.csv"
{toml_extra}
[genes]
columns = ["op", "width"]
choices = [["conv", "skip", "pool"], ["16", "32"]]

[metrics]
{metrics}

[costs]
{costs}
""")
    return toml


def test_nas_bench_macro_loads_as_published(macro):
    assert len(macro) == 6561 and macro.n_var == 8 and macro.complete
    assert macro.objectives == ["error", "params", "flops"]
    raw = json.loads(MACRO_JSON.read_text())
    row = macro.row([int(c) for c in "22212220"])
    assert abs(macro.error_mean[row] - (1 - raw["22212220"]["mean_acc"] / 100)) < 1e-9
    assert macro.costs["params"][row] == raw["22212220"]["params"]
    # the same JSON at any path is read as NAS-Bench-Macro's published format
    other = load_table(str(MACRO_JSON))
    assert other.sha256 == macro.sha256 and len(other) == 6561


def test_query_returns_one_run_chosen_by_the_seed(macro):
    raw = json.loads(MACRO_JSON.read_text())
    x = [int(c) for c in "02012100"]
    runs = [1 - a / 100 for a in raw["02012100"]["test_acc"]]
    seen = {macro.query(x, seed)["error"] for seed in range(30)}
    assert all(any(abs(s - r) < 1e-12 for r in runs) for s in seen)
    assert len(seen) > 1  # different seeds see different runs
    assert macro.query(x, 3) == macro.query(x, 3)  # one seed always sees the same run
    assert macro.query(x, 3)["error_mean"] == pytest.approx(np.mean(runs))


@pytest.mark.parametrize("objectives,size", [(["error", "params"], 50), (["error", "flops"], 66),
                                             (["error", "params", "flops"], 177)])
def test_exact_front_sizes_of_nas_bench_macro(macro, objectives, size):
    rows = exact_front(macro, objectives)
    assert len(rows) == size
    F = macro.mean(objectives)
    # nothing in the table dominates a front member
    for r in rows[:10]:
        dominated = np.all(F <= F[r], axis=1) & np.any(F < F[r], axis=1)
        assert not dominated.any()


def test_scores_of_the_exact_front_and_of_a_poor_set(macro):
    sc = TableScorer(macro, ["error", "params"])
    best = sc.score(sc.front_rows)
    assert best["hv_ratio"] == pytest.approx(1.0) and best["igd"] == pytest.approx(0.0, abs=1e-12)
    poor = sc.score(np.arange(20))
    assert 0 < poor["hv_ratio"] < 1 and poor["igd"] > 0


def test_generic_csv_toml_loads(tmp_path):
    t = load_table(str(write_toy(tmp_path)))
    assert len(t) == 6 and t.n_var == 2 and t.complete and t.objectives == ["error", "params", "latency_cpu"]
    row = t.row([0, 1])  # conv, 32: accuracies 75 and 76 %
    assert t.error_runs[row].tolist() == pytest.approx([0.25, 0.24])
    assert t.keys[row] == "conv,32"
    assert len(exact_front(t, ["error", "params"])) >= 1


@pytest.mark.parametrize("change,message", [
    (dict(metrics='accuracy = "acc_a"\nscale = 1'), "outside [0, 1]"),
    (dict(metrics='accuracy = "nope"\nscale = 100'), "'nope' is missing"),
    (dict(metrics='accuracy = "acc_a"\nerror = "acc_b"'), "exactly one of accuracy"),
    (dict(costs='weight = "n_params"'), "cost 'weight'"),
    (dict(costs=''), "names no cost column"),
    (dict(toml_extra='colour = "red"'), "unknown key 'colour'"),
    (dict(rows=[["conv", "16", 70, 71, 100, 1], ["conv", "16", 70, 71, 100, 1]]), "appears more than once"),
    (dict(rows=[["conv", "64", 70, 71, 100, 1]]), "'64' at position 1"),
    (dict(rows=[["conv", "16", "high", 71, 100, 1]]), "not a number"),
    (dict(rows=[["conv", "16", 70, 71, -5, 1]]), "negative"),
])
def test_bad_tables_are_config_errors(tmp_path, change, message):
    toml = write_toy(tmp_path, **change)
    with pytest.raises(ConfigError, match=None) as exc:
        load_table(str(toml))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_bad_table_references(tmp_path):
    with pytest.raises(ConfigError, match="table not found"):
        load_table_task("table:/no/such.json")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="describe"):
        load_table(str(tmp_path / "x.csv"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="NAS-Bench-Macro format"):
        load_table(str(tmp_path / "bad.json"))
    (tmp_path / "bad.toml").write_text("[table\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_table(str(tmp_path / "bad.toml"))


def _cli(*args, cwd=None):
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "natkit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.parametrize("method", ["lda", "tascnet", "progressive", "ke"])
def test_methods_that_need_weights_refuse_a_table_task(tmp_path, method):
    r = _cli("search", method, "--task", "table:nas-bench-macro", "--out", str(tmp_path / "d"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "trained weights" in r.stderr and method in r.stderr


def test_bad_table_on_the_command_line_exits_2(tmp_path):
    toml = write_toy(tmp_path, metrics='accuracy = "acc_a"\nscale = 7')
    r = _cli("search", "nat", "--task", f"table:{toml}", "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "scale" in r.stderr
    r = _cli("search", "nsga", "--task", "digits", "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and "table tasks only" in r.stderr
    r = _cli("search", "random", "--task", "table:nas-bench-macro", "--objectives", "error,macs",
             "--out", str(tmp_path / "f"))
    assert r.returncode == 2 and "'macs' is not in table" in r.stderr
