"""benchmarks/code_audit.py: finds every commit a results file names and checks it against the history."""

import json
import subprocess

from benchmarks import code_audit as A


def test_commits_are_found_under_commit_keys_only(tmp_path):
    data = {"commit": "a" * 40, "runs": [{"search_commit": "b" * 40, "sha": "c" * 40}],
            "provenance": {"commit": "not-a-commit"}, "note": "d" * 40}
    assert A.commits_in(data) == {"a" * 40, "b" * 40}


def test_audit_flags_unknown_commits_and_passes_heads(tmp_path, capsys):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=A.ROOT, capture_output=True, text=True).stdout.strip()
    (tmp_path / "ok.json").write_text(json.dumps({"provenance": {"commit": head}}))
    rows = A.audit(tmp_path)
    assert rows[head]["natkit_diff"] == [] and A.main(["--results", str(tmp_path), "--strict"]) == 0
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.json").write_text(json.dumps({"runs": [{"commit": "0" * 40}]}))
    assert A.audit(tmp_path)["0" * 40]["natkit_diff"] is None
    assert A.main(["--results", str(tmp_path)]) == 1
    assert "1 not in the history" in capsys.readouterr().out
