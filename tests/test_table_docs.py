"""The worked example of docs/table_format.md runs as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_worked_example_of_the_table_format_page(tmp_path):
    text = (ROOT / "docs" / "table_format.md").read_text()
    example = text[text.index("## Worked example"):]
    (tmp_path / "sweep.csv").write_text(re.search(r"```csv\n(.*?)```", example, re.S).group(1))
    (tmp_path / "sweep.toml").write_text(re.search(r"```toml\n(.*?)```", example, re.S).group(1))
    commands = re.search(r"```\n(natkit search.*?)```", example, re.S).group(1).strip().splitlines()
    outputs = []
    for line in commands:
        args = line.split()[1:]
        r = subprocess.run([sys.executable, "-m", "natkit.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
        assert r.returncode == 0, (line, r.stderr)
        outputs.append(r.stdout)
    members = [json.loads(x) for x in outputs[1].splitlines()]
    assert members
    for m in members:
        assert m["arch"]["key"] == ",".join([["conv3", "conv5"][m["encoding"][0]],
                                             ["narrow", "medium", "wide"][m["encoding"][1]]])
        assert 0 < m["error_mean"] < 0.3 and m["latency_pi4"] > 0
    # the cheapest latency row (conv3, narrow) is on every exact error-latency front
    assert any(m["arch"]["key"] == "conv3,narrow" for m in members)
    log = json.loads((tmp_path / "runs" / "pi" / "table_log.json").read_text())
    assert log["summary"]["evaluations"] == 4 and log["generations"][-1]["hv_ratio"] > 0
    assert (tmp_path / "runs" / "pi" / "summary.md").is_file()
