"""Deep LDA pruning as a multi-objective problem: NSGA-III over eta and the kept share M'.

``natkit.methods.lda.run`` on digits (source: Fashion-MNIST, cached), objectives ``error``, ``params``
and ``robust_error`` (mean val error under Gaussian noise sigma=0.2 and FGSM epsilon=0.05), schedule
stage off so that every candidate is a one-shot prune of the unpruned reference + fine-tuning.
Writes results/lda/search.json (front, every candidate, hypervolume per generation) and
results/lda/search.png. Default size: ~4-6 minutes on one contended core; ``--quick`` ~1 minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from natkit.core.archive import Archive  # noqa: E402
from natkit.data import load_task  # noqa: E402
from natkit.methods import lda  # noqa: E402
from natkit.methods.context import RunContext  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "lda"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--pop-size", type=int, default=6)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = load_task("digits", seed=args.seed)
    objectives = ["error", "params", "robust_error"]
    options = {"schedule": False, "eta_levels": 16, "finetune_epochs": 4}
    with tempfile.TemporaryDirectory() as tmp:
        arch = Archive(Path(tmp) / "archive.sqlite")
        run_id = arch.start_run("lda", task.spec, {"options": options}, args.seed)
        ctx = RunContext(method="lda", task=task, archive=arch, run_id=run_id, out_dir=Path(tmp), seed=args.seed,
                         generations=args.generations, pop_size=args.pop_size, objectives=objectives,
                         options=options, quick=args.quick, source_spec="fashion-mnist", keep_models="front")
        lda.run(ctx)
        cands = [c.to_dict() for c in arch.candidates(run_id=run_id)]
        front = [c.to_dict() for c in arch.front(objectives, run_id=run_id)]
        gens = arch.generations(run_id)
    base = next(c for c in cands if c["extra"].get("stage") == "unpruned")
    result = {"objectives": objectives, "options": options, "generations": gens, "front": front,
              "candidates": cands, "unpruned": base, "seconds": round(time.time() - t0, 1),
              "setting": f"digits, vgg_small from Fashion-MNIST, pop {args.pop_size} x {args.generations} gen"}
    (out / "search.json").write_text(json.dumps(result, indent=2, default=str))
    _plot(cands, front, base, out / "search.png")
    print(f"{len(cands)} candidates, {len(front)} on the front, {result['seconds']} s")


def _plot(cands, front, base, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = [c for c in cands if c["status"] == "ok" and c["extra"].get("stage") == "search"]
    ids = {c["id"] for c in front}
    ax.scatter([c["params"] for c in ok], [100 * c["error"] for c in ok], c="C7", s=14, label="evaluated")
    f = sorted((c for c in ok if c["id"] in ids), key=lambda c: c["params"])
    ax.scatter([c["params"] for c in f], [100 * c["error"] for c in f], c="C0", s=30,
               label="front (error, params, robust error)")
    for c in f:
        ax.annotate(f"{100 * c['extra']['robust_error']:.0f}", (c["params"], 100 * c["error"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.scatter([base["params"]], [100 * base["error"]], marker="*", c="k", s=80, label="unpruned")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("val error (%)  [labels: robust error %]")
    ax.set_title("LDA pruning search over eta and M' (digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
