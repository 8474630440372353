"""Which natkit made each committed result: every git commit named in a results file, against HEAD's natkit.

Walks every JSON file under results/ for 40-hex values under a key containing "commit" (a file's provenance,
a run's own commit, a verdict's source run), and for each distinct commit lists the natkit/ files that differ
from HEAD (``git diff --name-only <commit> HEAD -- natkit/``). A result made by the final natkit shows none.
A commit missing from the history is an error (exit 1); so is, with ``--strict``, any natkit difference.

    python -m benchmarks.code_audit [--strict] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEX40 = re.compile(r"^[0-9a-f]{40}$")


def commits_in(obj, key: str = "") -> set[str]:
    """Every 40-hex string stored under a key whose name contains "commit", anywhere in a JSON value."""
    found = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            found |= commits_in(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            found |= commits_in(v, key)
    elif isinstance(obj, str) and "commit" in key.lower() and HEX40.match(obj):
        found.add(obj)
    return found


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def audit(results: Path) -> dict[str, dict]:
    """commit -> {"files": results files naming it, "natkit_diff": natkit files differing from HEAD, or None
    when the commit is not in the history}."""
    by_commit: dict[str, dict] = {}
    for path in sorted(results.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for c in commits_in(data):
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            by_commit.setdefault(c, {"files": []})["files"].append(str(name))
    for c, row in by_commit.items():
        if git("cat-file", "-e", f"{c}^{{commit}}").returncode != 0:
            row["natkit_diff"] = None
            continue
        out = git("diff", "--name-only", c, "HEAD", "--", "natkit/").stdout.split()
        row["natkit_diff"] = sorted(out)
    return by_commit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--strict", action="store_true", help="fail on any natkit difference, not only unknown commits")
    ap.add_argument("--verbose", action="store_true", help="list the results files naming each commit")
    args = ap.parse_args(argv)
    rows = audit(Path(args.results))
    missing = [c for c, r in rows.items() if r["natkit_diff"] is None]
    differ = {c: r for c, r in rows.items() if r["natkit_diff"]}
    for c, r in sorted(rows.items(), key=lambda kv: (kv[1]["natkit_diff"] is None, len(kv[1]["natkit_diff"] or []))):
        state = "NOT IN HISTORY" if r["natkit_diff"] is None else (
            "natkit = HEAD" if not r["natkit_diff"] else "natkit differs: " + ", ".join(r["natkit_diff"]))
        print(f"{c[:10]}  {len(r['files']):3d} file(s)  {state}")
        if args.verbose:
            for f in sorted(set(r["files"])):
                print(f"              {f}")
    print(f"{len(rows)} commits named in results/: {len(rows) - len(missing) - len(differ)} with HEAD's natkit, "
          f"{len(differ)} with another natkit, {len(missing)} not in the history")
    return 1 if missing or (args.strict and differ) else 0


if __name__ == "__main__":
    sys.exit(main())
