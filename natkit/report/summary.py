"""summary.md: per method, best test error, cheapest models near it, hypervolume, evaluations, time."""

from __future__ import annotations

from pathlib import Path

from natkit.core.search import hypervolume
from natkit.report.plots import plot_front, plot_hv


def summarise(archive, methods=None, objectives=("error", "macs")) -> list[dict]:
    runs = archive.runs()
    all_ok = [c for c in archive.candidates(method=methods, status="ok") if not c.extra.get("chance")]
    # one fixed normalisation for every method so hypervolumes compare
    max_macs = max((c.macs for c in all_ok if c.macs), default=1.0)
    rows = []
    for m in sorted({c.method for c in archive.candidates(method=methods)}):
        cands = archive.candidates(method=m)
        ok = [c for c in cands if c.status == "ok" and not c.extra.get("chance")]
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
                     "at_chance": sum(bool(c.extra.get("chance")) and c.status in ("ok", "infeasible") for c in cands),
                     "objectives": list(objectives),
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
    objectives = rows[0]["objectives"] if rows else ["error", "macs"]
    lines = [f"# natkit summary — `{archive_path}`", "",
             f"Fronts over {', '.join(objectives)}. "
             "Hypervolume: error vs MACs, both normalised to [0, 1] with the largest MACs in the archive, "
             "reference point 1.1. Errors within 1 point are relative to that method's best (test error when "
             "measured on the front, val error otherwise). Candidates at chance level (val error within "
             "binomial noise of the majority-class rate) are counted but left out of every other column.", "",
             "| method | best test error | best val error | min MACs within 1 pt | min params within 1 pt | "
             "hypervolume | real evaluations | at chance | front size | wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {_fmt(r['best_test_error'], 'err')} | {_fmt(r['best_val_error'], 'err')} | "
                     f"{_fmt(r['min_macs_within_1pt'], 'int')} | {_fmt(r['min_params_within_1pt'], 'int')} | "
                     f"{_fmt(r['hv'])} | {r['evaluations']} | {r['at_chance']} | {r['front_size']} | "
                     f"{_fmt(r['wall_s'], 's')} |")
    flagged = [r for r in rows if r["at_chance"]]
    if flagged:
        lines += ["", "Warning: candidates at chance level: " +
                  ", ".join(f"{r['method']} {r['at_chance']}" for r in flagged) + " (kept off the fronts)."]
    return "\n".join(lines) + "\n"


def write_report(archive, out_dir, methods=None, objectives=("error", "macs")) -> Path:
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(archive, methods, objectives)
    x = next((o for o in objectives if o != "error"), "macs")
    plot_front(archive, out / "front.png", methods=methods, x=x, y="error", objectives=objectives)
    plot_hv(archive, out / "hv.png", methods=methods)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    path = out / "summary.md"
    path.write_text(summary_markdown(rows, archive.path.name))
    return path
