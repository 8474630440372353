"""Regenerate the README's results table from results/*/claims.json (never typed by hand).

Each claims.json holds {"claims": [{"claim", "setting", "ours", "baseline", "holds", "plot"}, ...]}.
The table goes between the README's `<!-- results:start -->` and `<!-- results:end -->` markers.
`--check` exits 1 when the README differs from what results/ says.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["quick", "nat", "tascnet", "progressive", "ke", "lda", "scale"]
START, END = "<!-- results:start -->", "<!-- results:end -->"
QSTART, QEND = "<!-- quick:start -->", "<!-- quick:end -->"


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table() -> str:
    dirs = sorted((ROOT / "results").glob("*/claims.json"),
                  key=lambda p: (ORDER.index(p.parent.name) if p.parent.name in ORDER else 99, p.parent.name))
    rows = ["| method | claim | our setting | ours | baseline (same run) | holds | plot |",
            "|---|---|---|---|---|---|---|"]
    for path in dirs:
        data = json.loads(path.read_text())
        for c in data.get("claims", []):
            plot = c.get("plot") or ""
            link = f"[{Path(plot).name}]({plot})" if plot else "-"
            holds = {True: "yes", False: "**no**"}.get(c.get("holds"), "-")
            rows.append("| " + " | ".join(_cell(x) for x in (path.parent.name, c.get("claim", ""), c.get("setting", ""),
                                                              c.get("ours", ""), c.get("baseline", ""), holds)) +
                        f" | {link} |")
    if len(rows) == 2:
        rows.append("| - | no benchmark results yet | | | | | |")
    return "\n".join(rows)


def quick_table() -> str:
    p = ROOT / "results" / "quick" / "summary.md"
    if not p.is_file():
        return "(run `make demo` to produce results/quick/summary.md)"
    lines = [line for line in p.read_text().splitlines() if line.startswith("|")]
    timing = ROOT / "results" / "quick" / "timing.json"
    note = ""
    if timing.is_file():
        t = json.loads(timing.read_text())
        note = f"\n\nWhole demo: {t['total_seconds'] / 60:.1f} min on this {t.get('cores', 2)}-core machine"
        if "jobs" in t:
            load = t.get("load_avg_end", [None])[0]
            note += (f" ({t['jobs']} lane(s) side by side, {t['threads_per_lane']} torch thread(s) each; "
                     f"{'empty' if t.get('cache_empty_at_start') else 'filled'} pretraining cache at the start"
                     + (f"; load average {load:.1f} at the end" if load is not None else "") + ")")
        note += "."
    return "\n".join(lines) + note


def _replace(text, start, end, body):
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    if any(m not in text for m in (START, END, QSTART, QEND)):
        print("README.md lacks the results markers", file=sys.stderr)
        return 2
    new = _replace(_replace(text, START, END, table()), QSTART, QEND, quick_table())
    if args.check:
        return 0 if new == text else 1
    readme.write_text(new)
    print("README.md results table regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
