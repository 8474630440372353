import json
from pathlib import Path

import pytest

from natkit.cli import main
from natkit.core.archive import Archive

# a tiny space whose candidates learn (a run whose every candidate is at chance exits 3)
FAST = ["--task", "digits", "--quick", "--generations", "2", "--pop-size", "4",
        "--space", str(Path(__file__).with_name("width_tiny.toml")), "-q"]


def _search(tmp_path, name, method="width", *extra):
    out = tmp_path / name
    assert main(["search", method, "--out", str(out), *FAST, *extra]) == 0
    return out


def test_width_search_front_plot_report_export(tmp_path, capsys):
    out = _search(tmp_path, "w")
    run = json.loads((out / "run.json").read_text())
    assert run["versions"]["pymoo"] and run["seed"] == 0 and run["stats"]["real_evaluations"] >= 4
    capsys.readouterr()
    assert main(["front", str(out), "--format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all({"id", "method", "error", "params", "macs", "status"} <= set(r) for r in lines)
    assert all(r["test_error"] is not None for r in lines)  # the final front is reported on test
    a = Archive(out / "archive.sqlite")
    gens = a.generations(run["run_id"])
    assert [g["generation"] for g in gens] == [0, 1] and all(0 < g["hv"] <= 1.21 for g in gens)
    assert main(["plot", str(out)]) == 0 and (out / "front.png").stat().st_size > 5000
    assert main(["report", str(out)]) == 0 and "| width |" in (out / "summary.md").read_text()
    assert main(["export", str(out), "--id", str(lines[0]["id"]), "--out", str(tmp_path / "exp")]) == 0
    from natkit.nets import load_model

    model = load_model(tmp_path / "exp")
    assert model.natkit_input["resolution"] == 8


def test_same_seed_same_front(tmp_path):
    fronts = []
    for name in ("a", "b"):
        out = _search(tmp_path, name)
        a = Archive(out / "archive.sqlite")
        fronts.append([(c.encoding, round(c.error, 6), c.macs) for c in a.front()])
    assert fronts[0] == fronts[1]


def test_resume_after_interrupt_repeats_nothing(tmp_path, monkeypatch):
    from natkit.methods.width import space as width_space

    ref = _search(tmp_path, "ref")
    n_ref = len(Archive(ref / "archive.sqlite").candidates())
    original = width_space.WidthEvaluator._evaluate
    calls = {"n": 0}

    def dying(self, enc):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, enc)

    monkeypatch.setattr(width_space.WidthEvaluator, "_evaluate", dying)
    out = tmp_path / "r"
    assert main(["search", "width", "--out", str(out), *FAST]) == 130
    assert len(Archive(out / "archive.sqlite").candidates()) == 3
    monkeypatch.setattr(width_space.WidthEvaluator, "_evaluate", original)
    assert main(["search", "width", "--out", str(out), "--resume"]) == 0
    cands = Archive(out / "archive.sqlite").candidates()
    encs = [json.dumps(c.encoding) for c in cands]
    assert len(encs) == len(set(encs)) == n_ref


def test_random_search_uses_the_same_budget(tmp_path):
    out = _search(tmp_path, "rnd", "random")
    a = Archive(out / "archive.sqlite")
    assert len(a.candidates()) <= 8 and len(a.generations()) == 2


def test_budget_marks_infeasible_and_impossible_budget_is_an_error(tmp_path, capsys):
    budget = tmp_path / "b.toml"
    budget.write_text("[budget]\nmacs = 25e3\n")  # between the tiny space's smallest and largest
    out = _search(tmp_path, "bud", "width", "--budget", str(budget))
    statuses = {c.status for c in Archive(out / "archive.sqlite").candidates()}
    assert "infeasible" in statuses
    budget.write_text("[budget]\nmacs = 10\n")
    code = main(["search", "width", "--out", str(tmp_path / "imp"), *FAST, "--budget", str(budget)])
    assert code == 2 and "macs <= 10 cannot be met" in capsys.readouterr().err  # found before any training
    assert not Archive(tmp_path / "imp" / "archive.sqlite").candidates()


@pytest.mark.parametrize("argv, needle", [
    (["search", "alexnet", "--out", "X"], "unknown method 'alexnet'"),
    (["search", "width", "--out", "X", "--objectives", "error,flops"], "unknown objective 'flops'"),
    (["search", "width", "--out", "X", "--task", "folder:/nonexistent/dir"], "/nonexistent/dir"),
    (["search", "width", "--out", "X", "--budget", "BAD"], "malformed TOML"),
    (["front", "/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_cli_input_exits_2_with_one_line(tmp_path, capsys, argv, needle):
    argv = [a.replace("X", str(tmp_path / "x")) for a in argv]
    if "BAD" in argv:
        bad = tmp_path / "bad.toml"
        bad.write_text("[budget\nmacs = = 3")
        argv[argv.index("BAD")] = str(bad)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_rerun_into_the_same_archive_reads_back_and_still_shows_the_front(tmp_path, capsys):
    first = _search(tmp_path, "one")
    arch = str(first / "archive.sqlite")
    n = len(Archive(arch).candidates())
    capsys.readouterr()
    assert main(["search", "width", "--out", str(tmp_path / "two"), "--archive", arch, *FAST[:-1]]) == 0
    out = capsys.readouterr().out
    assert len(Archive(arch).candidates()) == n and "on the front" in out and "0 on the front" not in out


def test_unknown_width_option_is_an_error(tmp_path, capsys):
    assert main(["search", "width", "--out", str(tmp_path / "x"), *FAST, "--option", "epoch=3"]) == 2
    assert "unknown width option 'epoch'" in capsys.readouterr().err
