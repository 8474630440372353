"""The quick end-to-end benchmark behind `make demo`.

Run as ``python -m benchmarks.quick``. Runs every method and the two reference searches with --quick settings on
--source fashion-mnist --task digits into ONE task archive, then writes results/quick/:
archive.sqlite, front.png (error vs MACs, one colour per method, combined front), hv.png and
summary.md. Prints the elapsed time; the whole demo aims at <= 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ALL = ["width", "random", "nat", "tascnet", "progressive", "ke", "lda"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="results/quick")
    ap.add_argument("--methods", default=",".join(ALL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep an existing archive (default: start afresh)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite summary.md/json and the plots from the existing archive, run nothing")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: predictable, and no "
                    "oversubscription when the machine is shared)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from natkit.cli import main as natkit
    from natkit.core.archive import Archive
    from natkit.report.provenance import provenance
    from natkit.report.summary import write_report

    out = Path(args.out)
    if args.report_only:
        summary = write_report(Archive(out / "archive.sqlite"), out, provenance=provenance(
            time.time()) | {"derived_from": str(out / "archive.sqlite"), "runs_predate_provenance": True,
                            "note": "report regenerated from the committed archive; the searches ran earlier "
                            "(timing.json)"})
        print(summary.read_text())
        return 0
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    archive_path = out / "archive.sqlite"
    t_all = time.time()
    timing = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        t0 = time.time()
        print(f"=== {method} ===", flush=True)
        code = natkit(["search", method, "--task", "digits", "--source", "fashion-mnist", "--out",
                       str(out / "runs" / method), "--archive", str(archive_path), "--quick", "--seed",
                       str(args.seed), "-q"])
        timing[method] = {"seconds": round(time.time() - t0, 1), "exit_code": code}
        print(f"{method}: exit {code}, {timing[method]['seconds']} s", flush=True)
    archive = Archive(archive_path)
    summary = write_report(archive, out, provenance=provenance(t_all))
    elapsed = time.time() - t_all
    (out / "timing.json").write_text(json.dumps({"total_seconds": round(elapsed, 1), "methods": timing,
                                                 "threads": torch.get_num_threads()}, indent=2))
    print(summary.read_text())
    print(f"quick benchmark: {elapsed / 60:.1f} min in all; results in {out}/")
    return 0 if all(t["exit_code"] == 0 for t in timing.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
