"""Progressive retraining vs. its baselines, and the choice of the default relevance criterion.

Setting: ``vgg_small`` pretrained on Fashion-MNIST (natkit's cached source model), fine-tuned as a whole on
the ``digits`` target (8 px digits upsampled to 28 px) *to convergence* (20 epochs at lr 0.05: 0 training
errors); that network is the starting point of every method. Two operating points eliminate the same share
of kernels in every conv layer, chosen so every layer's count is an integer and all methods reach
*identical* widths (hence identical params and MACs): share 0.375 (-60% MACs) and 0.5 (-74% MACs).

Methods, all at equal total training epochs (6 conv layers x E, E = 3 by default):
- ``progressive``    layer by layer; after each layer, retrain layers 1..l+1 for E epochs, later layers frozen
                     (weights and, by natkit's default ``bn_stats=frozen``, BatchNorm running statistics).
- ``global_retrain`` (a) same criterion and order, but each layer is eliminated in ``ACTIONS`` actions,
                     each followed by retraining the *entire* model for E / ACTIONS epochs.
- ``one_shot``       (b) same criterion scored once on the trained model, all layers eliminated at once,
                     then the entire model retrained for 6 E epochs.
- ``tp_l1``          (c) Torch-Pruning L1 magnitude pruning to the same per-layer share, then the entire
                     model retrained for 6 E epochs.
Every retraining call is SGD (momentum 0.9, Nesterov, wd 5e-4) with its own cosine schedule from its lr.

Parts (each stores its runs in results/progressive/runs.json, so a later part reuses earlier runs):
- ``lr``        every method with every lr of ``LR_GRID`` at both shares and all seeds (progressive and the
                baselines (a)/(b) with criterion ``mean_abs``); each method's lr = lowest mean *validation*
                error over seeds and shares. Same grid and rule for every method.
- ``criteria``  progressive with the four objective criteria at both shares, at progressive's chosen lr; the
                default is the lowest mean validation error over seeds *and* shares (2 x seeds runs each).
- ``compare``   all four methods at their chosen lr, with the chosen criterion and natkit's default BatchNorm
                reading; *test* error is reported.
- ``bn``        progressive with the frozen layers' BatchNorm statistics frozen vs. updated (``bn_stats=update``:
                their weights stay frozen, their running statistics follow the changed inputs), at
                progressive's lr and criterion, both shares, all seeds.
The lr and the criterion are chosen with the frozen layers' statistics updated (``CHOICE_BN``): the reading
under which both choices were registered and made; the ``bn`` part then chooses the reading at that lr and
criterion. The reading is pinned so that setting natkit's default to the ``bn`` choice does not move the lr
and criterion choices made before it (a chain of choices, not a joint one over all three).

Changes from the previous session (E = 1, base fine-tuned 6 epochs at 0.01, one lr 0.05 for all, criteria at
share 0.5 only): the base was undertrained (every pruned+retrained baseline beat it), 1 epoch per layer does
not converge, and 287 validation images at one share cannot separate criteria.

Second setting (``--task fashion-mnist --samples-per-class 500 --from results/progressive``): the VGG trained
on Fashion-MNIST itself (natkit's cached pretraining on the full training set, then 20 epochs on a 5,000-image
subset so one run stays under a minute), pruned and retrained on that subset, tested on the 10,000-image test
split (one image = 0.01 points, so differences are measurable, unlike digits' 359). The criterion is the one
chosen on the digits benchmark; each method's lr too, unless ``--lr-here``. Its
compare.json/png go to results/progressive/fashion-mnist/, and its rows are added to
results/progressive/claims.json and results.md. About 25 minutes. With ``--lr-here`` each method's lr is chosen on this
task's own validation split (12,000 images) by the same grid and rule; about 35 minutes more.

Sizes: one run takes 10-25 s on an idle core (E = 3); the full benchmark is ~100 runs per 3 seeds, about 25-35
minutes (the committed digits run uses ``--seeds 10``: about 40 minutes, then ``--part bn --seeds 10``).
``--quick``: one share, one seed, two criteria, one lr, a few batches per epoch (< 2 minutes; not meaningful).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

from natkit.baselines import retrain as BR
from natkit.data import load_task
from natkit.measure import measure
from natkit.methods.progressive import method as P
from natkit.methods.progressive.relevance import list_criteria
from natkit.train import TrainConfig, evaluate
from natkit.report.provenance import stamp
from natkit.utils.seed import derive_seed

OUT = ROOT / "results" / "progressive"
RES, CH = 28, 1
ACTIONS = 2  # elimination actions per layer for baseline (a)
LR_GRID = (0.01, 0.02, 0.05)
LR_CRITERION = "mean_abs"  # criterion of progressive/(a)/(b) while their lr is chosen
COST_ORDER = ["mean_abs", "apoz", "discriminative", "loss_increase"]  # cheapest first (tie-break of the default)
CHOICE_BN = "update"  # progressive's BatchNorm reading while the lr and the criterion are chosen (see above)


def log(msg):
    print(f"[progressive-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def base_model(task, quick: bool, seed: int = 0):
    """The fine-tuned starting network, built exactly as ``natkit search progressive`` builds it."""

    import tempfile

    from natkit.api import make_context

    with tempfile.TemporaryDirectory() as tmp:  # trained_base reads only the task and options; a throw-away run
        ctx = make_context("progressive", task=task, out_dir=OUT, archive=Path(tmp) / "archive.sqlite",
                           quick=quick, seed=seed, verbose=True)
        s = P.settings_from(ctx)
        return P.trained_base(ctx, s), s


def metrics(model, task, split_errors=("val", "test")) -> dict:
    m = measure(model, RES, CH)
    for split in split_errors:
        m[f"{split}_error"] = evaluate(model, task, split, resolution=RES, channels=CH)["error"]
    m["widths"] = P.conv_widths(model)
    return m


def run_progressive(base, task, share, criterion, rt, score_batches, seed):
    model = copy.deepcopy(base)
    n = len(P.conv_widths(model))
    P.simplify(model, task, [share] * n, rt, criterion=criterion, score_batches=score_batches, seed=seed)
    return model


def run_global_retrain(base, task, share, criterion, rt, score_batches, seed):
    return BR.whole_model_retrain_per_action(base, task, share, criterion, rt, score_batches, seed, resolution=RES,
                                             channels=CH, actions=ACTIONS)


def run_one_shot(base, task, share, criterion, rt, score_batches, seed):
    return BR.one_shot_retrain(base, task, share, criterion, rt, score_batches, seed, resolution=RES, channels=CH)


def run_tp_l1(base, task, share, criterion, rt, score_batches, seed):
    return BR.l1_retrain(base, task, share, criterion, rt, score_batches, seed, resolution=RES, channels=CH)


METHODS = {"progressive": run_progressive, "global_retrain": run_global_retrain, "one_shot": run_one_shot,
           "tp_l1": run_tp_l1}


def code_fingerprint() -> str:
    """A hash of the code a run depends on (natkit's sources and this benchmark's), so that stored runs made
    by other code are never reused."""
    import hashlib

    h = hashlib.sha256()
    files = sorted((ROOT / "natkit").rglob("*.py")) + sorted((ROOT / "benchmarks" / "progressive").glob("*.py"))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


class Runs:
    """Every run of the benchmark, keyed by (method, criterion, share, seed, E, lr, batch cap, BN statistics of
    progressive's frozen layers), stored after each run. Only runs made by the same code (``code_fingerprint``)
    are reused; runs.json keeps nothing else."""

    def __init__(self, path: Path, base, task, E: float, batch_size: int, max_batches, n_score: int):
        self.path, self.base, self.task = path, base, task
        self.E, self.batch_size, self.max_batches, self.n_score = E, batch_size, max_batches, n_score
        self.code = code_fingerprint()
        stored = json.loads(path.read_text())["runs"] if path.is_file() else []
        self.rows = [r for r in stored if r.get("code") == self.code]
        if len(self.rows) < len(stored):
            log(f"{len(stored) - len(self.rows)} stored runs were made by other code: not reused (they are dropped)")

    @staticmethod
    def key(r):
        return (r["method"], r["criterion"], float(r["share"]), int(r["seed"]), float(r["E"]), float(r["lr"]),
                r.get("max_batches"), r.get("bn_stats"))

    def get(self, method, criterion, share, seed, lr, bn_stats=None) -> dict:
        criterion = "l1" if method == "tp_l1" else criterion
        bn = bn_stats or P.DEFAULT_BN_STATS
        bn_stats = bn if method == "progressive" else None  # only progressive has frozen layers
        k = (method, criterion, float(share), int(seed), float(self.E), float(lr), self.max_batches, bn_stats)
        for r in self.rows:
            if self.key(r) == k:
                return r
        rt = P.Retraining(TrainConfig(epochs=self.E, lr=lr, batch_size=self.batch_size, max_batches=self.max_batches),
                          resolution=RES, channels=CH, bn_stats=bn)
        score_batches = P.fixed_subset(self.task, self.n_score, resolution=RES, channels=CH,
                                       seed=derive_seed(seed, "subset"))
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = METHODS[method](self.base, self.task, share, criterion, rt, score_batches, seed)
        r = metrics(model, self.task)
        r.update(method=method, criterion=criterion, share=share, seed=seed, E=self.E, lr=lr, max_batches=self.max_batches,
                 bn_stats=bn_stats, seconds=round(time.perf_counter() - t0, 1), code=self.code)
        log(f"{method:15s} {criterion:15s} share {share} seed {seed} lr {lr}: val {r['val_error']:.4f} "
            f"test {r['test_error']:.4f} macs {r['macs']:,} ({r['seconds']} s)")
        self.rows.append(r)
        tmp = self.path.with_suffix(".tmp")  # a run killed while saving must not truncate hours of stored runs
        tmp.write_text(json.dumps({"runs": self.rows}, indent=1))
        os.replace(tmp, self.path)
        return r


def mean_val(rows) -> float:
    return float(np.mean([r["val_error"] for r in rows]))


def main(argv=None):
    from benchmarks.progressive.report import plot_compare, plot_criteria, write_claims

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["lr", "criteria", "compare", "bn", "all", "claims"], default="all")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=None, help="E, retraining epochs per layer (default 3)")
    ap.add_argument("--out", default=None, help="default results/progressive (digits) or results/progressive/<task>")
    ap.add_argument("--task", default="digits", help="digits (transfer from Fashion-MNIST) or fashion-mnist")
    ap.add_argument("--samples-per-class", type=int, default=None, help="subset of the task's training images")
    ap.add_argument("--from", dest="from_dir", default=None,
                    help="reuse the criterion (and, without --lr-here, the lr per method) chosen in this directory's "
                         "criteria.json/lr.json; the criteria part is not run")
    ap.add_argument("--lr-here", action="store_true",
                    help="with --from: choose each method's lr on this task's validation split (same grid and rule)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = str(OUT if args.task == "digits" else OUT / args.task)
    if args.from_dir:
        src = Path(args.from_dir)
        for name in ("lr.json", "criteria.json"):
            if not (src / name).is_file():
                ap.error(f"--from {src}: {name} not found (run the digits benchmark first)")
        if args.part == "all":  # the lr (here or reused) and the criterion (reused): then compare
            args.part = "all" if args.lr_here else "compare"
        elif args.part not in ("compare", "bn", "claims"):
            ap.error("with --from only --part all, compare, bn or claims make sense")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    # a second setting (--from) is reported beside the digits run, in the --from directory's claims and results.md
    report_dir = Path(args.from_dir) if args.from_dir else out
    if args.part == "claims":  # re-derive claims.json/results.md from the stored JSON
        write_claims(report_dir)
        return

    task = load_task(args.task, seed=0, samples_per_class=args.samples_per_class)
    base, s = base_model(task, args.quick)
    base_m = metrics(base, task)
    base_m["train_error"] = evaluate(base, task, "train", resolution=RES, channels=CH)["error"]
    log(f"base: {base_m}")
    E = args.epochs or (1.0 if args.quick else 3.0)
    shares = [0.5] if args.quick else [0.375, 0.5]
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    grid = (0.05,) if args.quick else LR_GRID
    # the four objective criteria of the issue; l1 (data-free) is baseline (c)'s criterion, compared there
    criteria = ["mean_abs", "loss_increase"] if args.quick else [c for c in list_criteria() if c != "l1"]
    n_score = 64 if args.quick else 256
    runs = Runs(out / "runs.json", base, task, E, s["batch_size"], 4 if args.quick else None, n_score)
    setting = {"model": s["model"], "source": "fashion-mnist", "target": args.task, "n_train": len(task.train),
               "resolution": RES,
               "E_per_layer": E, "total_epochs": E * len(base_m["widths"]), "lr_grid": list(grid),
               "finetune_lr": s["finetune_lr"], "finetune_epochs": s["finetune_epochs"],
               "source_epochs": s["source_epochs"], "batch_size": s["batch_size"], "bn_stats": P.DEFAULT_BN_STATS,
               "shares": shares, "seeds": seeds, "score_images": n_score, "actions_per_layer_a": ACTIONS,
               "n_val": len(task.val), "n_test": len(task.test), "quick": args.quick, "base": base_m}

    lr_path, crit_path = out / "lr.json", out / "criteria.json"
    if args.from_dir:  # the criterion (and maybe each method's lr) chosen on the digits run's validation split
        crit_path = Path(args.from_dir) / "criteria.json"
        if not args.lr_here:
            lr_path = Path(args.from_dir) / "lr.json"
            lr_setting = json.loads(lr_path.read_text())["setting"]
            setting["lr_note"] = f" on the {lr_setting['target']} benchmark, reused here"
            setting["lr_grid"] = lr_setting["lr_grid"]
    if args.part in ("lr", "all"):
        rows, chosen, table = [], {}, {}
        for meth in METHODS:
            for lr in grid:
                rs = [runs.get(meth, LR_CRITERION, sh, sd, lr, bn_stats=CHOICE_BN) for sh in shares for sd in seeds]
                rows += rs
                table.setdefault(meth, {})[str(lr)] = {
                    "val_error": mean_val(rs), "test_error": float(np.mean([r["test_error"] for r in rs]))}
            chosen[meth] = float(min(grid, key=lambda lr: (table[meth][str(lr)]["val_error"], -lr)))
        lr_path.write_text(json.dumps(stamp({"setting": {**setting, "bn_stats": CHOICE_BN}, "criterion": LR_CRITERION,
                                             "table": table,
                                             "chosen": chosen, "rule": "lowest mean val error over seeds and "
                                             "shares (ties: the larger lr)"}), indent=2))
        log(f"lr chosen: {chosen}")
    lrs = json.loads(lr_path.read_text())["chosen"] if lr_path.is_file() else {m: s["lr"] for m in METHODS}

    if args.part in ("criteria", "all") and not args.from_dir:
        rows = [runs.get("progressive", c, sh, sd, lrs["progressive"], bn_stats=CHOICE_BN) for c in criteria
                for sh in shares for sd in seeds]
        ranking = {c: mean_val([r for r in rows if r["criterion"] == c]) for c in criteria}
        # equal error counts tie (the float sums differ in the last digits); a tie goes to the cheaper criterion
        best = min(ranking, key=lambda c: (round(ranking[c], 9), COST_ORDER.index(c)))
        crit_path.write_text(json.dumps(stamp({"setting": {**setting, "lr": lrs["progressive"], "bn_stats": CHOICE_BN},
                                               "runs": rows,
                                               "mean_val_error": ranking, "best": best,
                                               "plot": "results/progressive/criteria.png"}), indent=2))
        plot_criteria(rows, base_m, out / "criteria.png")
        log(f"criteria by mean val error: {ranking}; best {best}")
    chosen_crit = json.loads(crit_path.read_text())["best"] if crit_path.is_file() else P.DEFAULT_CRITERION

    if args.part in ("compare", "all"):
        rows = [runs.get(m, chosen_crit, sh, sd, lrs[m]) for m in METHODS for sh in shares for sd in seeds]
        (out / "compare.json").write_text(json.dumps(stamp(
            {"setting": {**setting, "lr": lrs}, "criterion": chosen_crit, "runs": rows,
             "plot": str((out / "compare.png").resolve().relative_to(ROOT)) if out.resolve().is_relative_to(ROOT)
             else str(out / "compare.png")}), indent=2))
    if args.part == "bn":
        rows = [runs.get("progressive", chosen_crit, sh, sd, lrs["progressive"], bn_stats=b)
                for b in ("frozen", "update") for sh in shares for sd in seeds]
        (out / "bn.json").write_text(json.dumps(stamp({"setting": {**setting, "lr": lrs["progressive"]},
                                                       "criterion": chosen_crit, "runs": rows}), indent=2))
    if (out / "compare.json").is_file():
        plot_compare(out, base_m)
    write_claims(report_dir)
    log(f"done in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
