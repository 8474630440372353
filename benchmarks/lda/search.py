"""Deep LDA pruning as a multi-objective problem: NSGA over eta and the kept share M', two ways
of evaluating a candidate, against the paper's schedule on the same unpruned network.

``natkit.methods.lda.method.run`` on digits (source: Fashion-MNIST, cached), objectives ``error``, ``params``
and ``robust_error`` (mean val error under Gaussian noise sigma=0.2 and FGSM epsilon=0.05), the same
eta start/step and fine-tuning epochs as ``benchmarks.lda.compression``:

* ``progressive`` (default of the method): a candidate is the schedule stopped at its own eta (one
  fine-tuning per round, prefixes cached). The run also executes the schedule stage, so the
  schedule's rounds come from the same unpruned network.
* ``oneshot`` (the previous session's evaluation): the unpruned network pruned once with eta and M',
  fine-tuned once. Same population and generations.

Question answered: why was the search weaker than the schedule, and does the progressive evaluation
close the gap? Compared: the lowest val error among candidates with >= 90 % of parameters removed
(what the search sees), and test error of the front members (``natkit.methods.common.finalize``).
Writes results/lda/search.{json,md,png}. Default ~10-15 minutes on one contended core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

from natkit.api import run_search
from natkit.core.archive import Archive
from natkit.report.provenance import stamp

TASK = "digits"
OBJECTIVES = ["error", "params", "robust_error"]


def run_mode(mode, args, log):
    options = {"schedule": mode == "progressive", "search_mode": mode, "eta_levels": args.eta_levels,
               "eta_start": args.eta_start, "eta_step": args.eta_step, "finetune_epochs": args.finetune_epochs,
               "transfer_epochs": args.transfer_epochs, "schedule_rounds": args.rounds}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:  # a whole lda run in a throw-away run folder
        res = run_search("lda", task=TASK, out=tmp, seed=args.seed, generations=args.generations,
                         pop_size=args.pop_size, objectives=OBJECTIVES, options=options, quick=args.quick,
                         source="fashion-mnist", device="cpu", keep_models="front", verbose=False)
        arch = Archive(res.archive_path)
        cands = [c.to_dict() for c in arch.candidates(run_id=res.run_id)]
        front = [c.to_dict() for c in arch.front(OBJECTIVES, run_id=res.run_id)]
        gens = arch.generations(res.run_id)
        arch.close()
    log(f"{mode}: {len(cands)} candidates in {time.time() - t0:.0f} s")
    return {"mode": mode, "options": options, "candidates": cands, "front": front, "generations": gens,
            "seconds": round(time.time() - t0, 1)}


def deep_best(cands, p0, stage, level=0.9):
    ok = [c for c in cands if c["status"] == "ok" and c["extra"].get("stage") == stage
          and 1 - c["params"] / p0 >= level and (stage != "schedule" or c["extra"].get("accepted"))]
    return min(ok, key=lambda c: (c["error"], c["params"])) if ok else None  # ties: the smaller network


def summarise(runs, p0) -> list[dict]:
    """Per mode and stage: the lowest-val-error candidate with >= 90% of the params removed, and that same
    candidate's test error (selected on validation; never a minimum over test errors)."""
    summary = []
    for r in runs:
        for stage in ("search", "schedule"):
            if stage == "schedule" and not any(c["extra"].get("stage") == "schedule" for c in r["candidates"]):
                continue
            best = deep_best(r["candidates"], p0, stage)
            n = sum(c["extra"].get("stage") == stage and c["status"] == "ok" for c in r["candidates"])
            tested = {c["id"]: c.get("test_error") for c in r["candidates"] + r["front"]
                      if c.get("test_error") is not None}
            summary.append({"mode": r["mode"], "stage": stage, "evaluated": n, "seconds": r["seconds"],
                            "best_deep_val_error": best and best["error"], "best_deep_params": best and best["params"],
                            "best_deep_removed": best and 1 - best["params"] / p0,
                            "best_deep_epochs": best and best["extra"].get("finetune_epochs"),
                            "best_deep_test_error": best and tested.get(best["id"])})
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "lda"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--pop-size", type=int, default=8)
    ap.add_argument("--eta-start", type=float, default=0.8)
    ap.add_argument("--eta-step", type=float, default=0.4)
    ap.add_argument("--eta-levels", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=float, default=6)
    ap.add_argument("--transfer-epochs", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--modes", default="progressive,oneshot")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="rebuild the summary, table and plot from a stored search.json "
                    "(nothing trained; its provenance is kept as run_provenance)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    extra = {}
    if args.render:
        stored = json.loads(Path(args.render).read_text())
        runs, seconds = stored["runs"], stored["seconds"]
        extra = {"derived_from": args.render, "run_provenance": stored.get("provenance")}
        args = argparse.Namespace(**{**stored["args"], "out": args.out, "render": args.render})
    else:
        runs = [run_mode(m, args, log) for m in args.modes.split(",") if m]
        seconds = round(time.time() - t0, 1)
    base = next(c for c in runs[0]["candidates"] if c["extra"].get("stage") == "unpruned")
    result = {"objectives": OBJECTIVES, "setting": f"digits, vgg_small from Fashion-MNIST, seed {args.seed}, pop "
              f"{args.pop_size} x {args.generations} gen per mode", "unpruned": base,
              "summary": summarise(runs, base["params"]), "runs": runs, "seconds": seconds,
              "args": {k: v for k, v in vars(args).items() if k != "render"}}
    (out / "search.json").write_text(json.dumps(stamp(result, **extra), indent=2, default=str))
    (out / "search.md").write_text(_markdown(result))
    _plot(runs, base, out / "search.png")
    print((out / "search.md").read_text())


def _fmt(v, pct=True):
    return "-" if v is None else (f"{100 * v:.2f}%" if pct else f"{v:g}")


def _markdown(r) -> str:
    lines = ["# Deep LDA pruning: NSGA over eta and M' vs the schedule", "", r["setting"] + f"; {r['seconds']} s in all.",
             f" Unpruned: {int(r['unpruned']['params'])} params, val error {100 * r['unpruned']['error']:.2f}%.", "",
             "| candidate evaluation | stage | evaluated | best val error at >= 90% removed | its params (removed) "
             "| its fine-tune epochs | its test error |", "|---|---|---|---|---|---|---|"]
    for s in r["summary"]:
        lines.append(f"| {s['mode']} | {s['stage']} | {s['evaluated']} | {_fmt(s['best_deep_val_error'])} | "
                     f"{_fmt(s['best_deep_params'], False)} ({_fmt(s['best_deep_removed'])}) | "
                     f"{_fmt(s['best_deep_epochs'], False)} | {_fmt(s.get('best_deep_test_error'))} |")
    lines += ["", "`oneshot`: prune the unpruned network once with eta and M', fine-tune once (4-6 epochs): at high "
              "eta most channels go in one step, chosen from utilities of the unpruned network, and the network gets a "
              "fraction of the schedule's fine-tuning. `progressive`: the schedule stopped at the candidate's eta "
              "(utilities recomputed, one fine-tuning per round), with shared prefixes cached.", "",
              "Selection is on validation: each row's candidate is the lowest val error with >= 90% of the params "
              "removed (ties: fewer params), and its test error is shown when it has one. Only members of the mode's "
              "front (error, params, robust_error; both stages together) are tested, so '-' means another stage's "
              "member dominates it."]
    return "\n".join(lines) + "\n"


def _plot(runs, base, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for k, r in enumerate(runs):
        ok = [c for c in r["candidates"] if c["status"] == "ok" and c["extra"].get("stage") == "search"]
        ax.scatter([c["params"] for c in ok], [100 * c["error"] for c in ok], s=16, color=f"C{k}", alpha=0.7,
                   label=f"search ({r['mode']})")
        sch = sorted((c for c in r["candidates"] if c["extra"].get("stage") == "schedule"), key=lambda c: c["params"])
        if sch:
            ax.plot([c["params"] for c in sch], [100 * c["error"] for c in sch], "-x", color="k", lw=1, ms=5,
                    label="schedule rounds")
    ax.scatter([base["params"]], [100 * base["error"]], marker="*", c="k", s=80, label="unpruned")
    ax.axvline(0.1 * base["params"], color="C3", ls=":", lw=1, label="90% removed")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=2)
    ax.set_xlabel("parameters")
    ax.set_ylabel("val error (%)")
    ax.set_title("LDA: NSGA over eta and M' vs the schedule (digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
