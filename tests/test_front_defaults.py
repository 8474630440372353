"""`natkit front`, `plot` and `report` default to the objectives the run was searched with."""

import json

from natkit.cli import main
from natkit.core.archive import Archive

# (error, macs, latency_ms): on (error, macs) only the first two are non-dominated; latency adds the third
ROWS = [(0.10, 200, 5.0), (0.20, 100, 5.0), (0.30, 300, 1.0), (0.40, 400, 9.0)]


def _run_dir(tmp_path, with_run_json=True):
    out = tmp_path / "run"
    out.mkdir()
    archive = Archive(out / "archive.sqlite")
    config = {"objectives": "error,macs,latency_ms", "method": "width"}
    run_id = archive.start_run("width", "digits", config, 0)
    for i, (e, m, lat) in enumerate(ROWS):
        archive.add(run_id, "width", generation=0, encoding=[i], metrics={"error": e, "params": 10, "macs": m,
                                                                          "latency_ms": lat})
    if with_run_json:
        (out / "run.json").write_text(json.dumps({"run_id": run_id, "archive": str(out / "archive.sqlite"),
                                                  "args": config}))
    return out


def _json_front(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_front_uses_the_runs_three_objectives_from_run_json(tmp_path, capsys):
    out = _run_dir(tmp_path)
    front = _json_front(capsys, ["front", str(out), "--format", "json"])
    assert sorted(r["error"] for r in front) == [0.1, 0.2, 0.3]
    explicit = _json_front(capsys, ["front", str(out), "--format", "json", "--objectives", "error,macs"])
    assert sorted(r["error"] for r in explicit) == [0.1, 0.2]
    assert main(["front", str(out)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert {"error", "macs", "latency_ms", "params"} <= set(header)


def test_front_of_a_bare_archive_reads_the_runs_table(tmp_path, capsys):
    out = _run_dir(tmp_path, with_run_json=False)
    front = _json_front(capsys, ["front", str(out / "archive.sqlite"), "--format", "json"])
    assert len(front) == 3


def test_report_and_plot_use_the_runs_objectives(tmp_path, capsys):
    out = _run_dir(tmp_path)
    assert main(["report", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())["methods"]
    assert summary[0]["front_size"] == 3 and summary[0]["objectives"] == ["error", "macs", "latency_ms"]
    assert "Fronts over error, macs, latency_ms" in (out / "summary.md").read_text()
    assert main(["plot", str(out)]) == 0 and (out / "front.png").stat().st_size > 5000
