"""summary.md: per method, best test error, cheapest models near it, hypervolume, evaluations, time."""

from __future__ import annotations

from pathlib import Path

from natkit.core.search import hypervolume
from natkit.report.plots import plot_front, plot_hv


def summarise(archive, methods=None, objectives=("error", "macs")) -> list[dict]:
    runs = archive.runs()
    all_ok = archive.candidates(method=methods, status="ok")
    # one fixed normalisation for every method so hypervolumes compare
    max_macs = max((c.macs for c in all_ok if c.macs), default=1.0)
    rows = []
    for m in sorted({c.method for c in archive.candidates(method=methods)}):
        cands = archive.candidates(method=m)
        ok = [c for c in cands if c.status == "ok"]
        front = archive.front(objectives, method=m)
        tested = [c for c in front if c.test_error is not None]
        best_test = min((c.test_error for c in tested), default=None)
        best_val = min((c.error for c in ok if c.error is not None), default=None)
        ref = best_test if best_test is not None else best_val
        key = "test_error" if best_test is not None else "error"
        near = [c for c in (tested if best_test is not None else ok)
                if c.metric(key) is not None and c.metric(key) <= ref + 0.01]
        hv = hypervolume([[c.error, c.macs] for c in front if c.error is not None and c.macs is not None],
                         [(0.0, 1.0), (0.0, max_macs)])
        m_runs = [r for r in runs if r.method == m]
        wall = sum((r.finished or r.started) - r.started for r in m_runs)
        rows.append({"method": m, "runs": len(m_runs), "evaluations": len(cands), "ok": len(ok),
                     "failed": sum(c.status == "failed" for c in cands), "front_size": len(front),
                     "best_val_error": best_val, "best_test_error": best_test,
                     "min_macs_within_1pt": min((c.macs for c in near if c.macs), default=None),
                     "min_params_within_1pt": min((c.params for c in near if c.params), default=None),
                     "hv": hv, "wall_s": wall})
    return rows


def _fmt(v, kind=""):
    if v is None:
        return "-"
    if kind == "err":
        return f"{100 * v:.2f}%"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "s":
        return f"{v:.0f}"
    return f"{v:.4f}"


def summary_markdown(rows, archive_path) -> str:
    lines = [f"# natkit summary — `{archive_path}`", "",
             "Hypervolume: error vs MACs, both normalised to [0, 1] with the largest MACs in the archive, "
             "reference point 1.1. Errors within 1 point are relative to that method's best (test error when "
             "measured on the front, val error otherwise).", "",
             "| method | best test error | best val error | min MACs within 1 pt | min params within 1 pt | "
             "hypervolume | real evaluations | front size | wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {_fmt(r['best_test_error'], 'err')} | {_fmt(r['best_val_error'], 'err')} | "
                     f"{_fmt(r['min_macs_within_1pt'], 'int')} | {_fmt(r['min_params_within_1pt'], 'int')} | "
                     f"{_fmt(r['hv'])} | {r['evaluations']} | {r['front_size']} | {_fmt(r['wall_s'], 's')} |")
    return "\n".join(lines) + "\n"


def write_report(archive, out_dir, methods=None, objectives=("error", "macs")) -> Path:
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(archive, methods, objectives=tuple(objectives))
    x = next((o for o in objectives if o != "error"), "macs")
    plot_front(archive, out / "front.png", x=x, methods=methods)
    plot_hv(archive, out / "hv.png", methods=methods)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    path = out / "summary.md"
    path.write_text(summary_markdown(rows, archive.path.name))
    return path
