"""summary.md: per method, the front member chosen on validation and its test error, the cheapest front
members near it on validation, hypervolume, evaluations, time.

Selection is on validation only: each method's member is its front member with the lowest validation
error (ties: fewer MACs), and the table reports that member's test error. "Within 1 pt" means a
validation error at most 1 point above the chosen member's. No number here is a minimum over test errors."""

from __future__ import annotations

from pathlib import Path

from natkit.core.search import hypervolume
from natkit.report.plots import plot_front, plot_hv


def select_on_validation(front):
    """The front member with the lowest validation error (ties: fewer MACs, then lower id); None if empty."""
    scored = [c for c in front if c.error is not None]
    if not scored:
        return None
    return min(scored, key=lambda c: (c.error, c.macs if c.macs is not None else float("inf"), c.id))


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
        chosen = select_on_validation(front)
        near = [c for c in front if chosen is not None and c.error is not None and c.error <= chosen.error + 0.01]
        hv = hypervolume([[c.error, c.macs] for c in front if c.error is not None and c.macs is not None],
                         [(0.0, 1.0), (0.0, max_macs)])
        m_runs = [r for r in runs if r.method == m]
        wall = sum((r.finished or r.started) - r.started for r in m_runs)
        rows.append({"method": m, "runs": len(m_runs), "evaluations": len(cands), "ok": len(ok),
                     "failed": sum(c.status == "failed" for c in cands), "front_size": len(front),
                     "at_chance": sum(bool(c.extra.get("chance")) and c.status in ("ok", "infeasible") for c in cands),
                     "objectives": list(objectives),
                     "chosen_id": None if chosen is None else chosen.id,
                     "val_error": None if chosen is None else chosen.error,
                     "test_error": None if chosen is None else chosen.test_error,
                     "macs": None if chosen is None else chosen.macs,
                     "min_macs_within_1pt_val": min((c.macs for c in near if c.macs), default=None),
                     "min_params_within_1pt_val": min((c.params for c in near if c.params), default=None),
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
             "Each method's member is chosen on validation (its front member with the lowest val error); the "
             "table gives that member's test error. Within 1 pt: front members whose val error is at most 1 point "
             "above the chosen one's. Hypervolume: val error vs MACs, both normalised to [0, 1] with the largest "
             "MACs in the archive, reference point 1.1. Candidates at chance level (val error within binomial "
             "noise of the majority-class rate) are counted but left out of every other column.", "",
             "| method | test error (val-selected) | its val error | its MACs | min MACs within 1 pt (val) | "
             "min params within 1 pt (val) | hypervolume | real evaluations | at chance | front size | "
             "wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {_fmt(r['test_error'], 'err')} | {_fmt(r['val_error'], 'err')} | "
                     f"{_fmt(r['macs'], 'int')} | {_fmt(r['min_macs_within_1pt_val'], 'int')} | "
                     f"{_fmt(r['min_params_within_1pt_val'], 'int')} | {_fmt(r['hv'])} | {r['evaluations']} | "
                     f"{r['at_chance']} | {r['front_size']} | {_fmt(r['wall_s'], 's')} |")
    flagged = [r for r in rows if r["at_chance"]]
    if flagged:
        lines += ["", "Warning: candidates at chance level: " +
                  ", ".join(f"{r['method']} {r['at_chance']}" for r in flagged) + " (kept off the fronts)."]
    return "\n".join(lines) + "\n"


def write_report(archive, out_dir, methods=None, provenance: dict | None = None,
                 objectives=("error", "macs")) -> Path:
    """summary.md/.json, front.png and hv.png in ``out_dir``; ``provenance`` (see natkit.report.provenance)
    is stored in summary.json beside the rows."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(archive, methods, objectives)
    x = next((o for o in objectives if o != "error"), "macs")
    plot_front(archive, out / "front.png", methods=methods, x=x, y="error", objectives=objectives)
    plot_hv(archive, out / "hv.png", methods=methods)
    (out / "summary.json").write_text(json.dumps({"methods": rows, "archive": archive.path.name,
                                                  "provenance": provenance}, indent=2))
    path = out / "summary.md"
    path.write_text(summary_markdown(rows, archive.path.name))
    return path
