"""`make bench`: every method's claim benchmark, then the quick demo's report and the README tables.

Each benchmark script is a standalone program writing to results/<method>/ (numbers, plots and
claims.json). They run one after another (the machine has 2 cores; running them side by side would
only make every timing noisier). `--only nat,lda` restricts the set.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GROUPS = ["nat", "tascnet", "progressive", "ke", "lda", "scale"]


def scripts(only=None) -> list[Path]:
    out = []
    for g in GROUPS:
        if only and g not in only:
            continue
        for p in sorted(ROOT.glob(f"{g}_*.py")):
            if "__main__" in p.read_text():
                out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", help="comma-separated method groups")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    failed = []
    for p in scripts(only):
        t0 = time.time()
        print(f"=== {p.name} ===", flush=True)
        code = subprocess.call([sys.executable, str(p)], cwd=ROOT.parent)
        print(f"{p.name}: exit {code} in {time.time() - t0:.0f} s", flush=True)
        if code:
            failed.append(p.name)
    subprocess.call([sys.executable, str(ROOT / "readme_table.py")], cwd=ROOT.parent)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
