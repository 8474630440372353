"""Knowledge Evolution in the small-data regime, networks trained from scratch.

Tasks: scikit-learn ``digits`` (all 1,151 training images, 8x8 px) and Fashion-MNIST at 100 training
images per class (28x28 px); a small VGG (``vgg_small``; ``--model`` picks another natkit net), one thread.
For each task and seed:

- KE (KELS, split rate s) for N generations of e epochs; the dense and the slim network are measured on
  the test split after every generation (fixed N, no selection on test);
- (a) baseline: generation 1, i.e. ordinary training for e epochs (the paper's baseline), and, as the
  stricter control, the dense network trained from scratch for N*e epochs (``--dense-long``);
- (b) baseline: the slim architecture (same family at width factor s) trained from scratch for the same
  total N*e epochs;
- MACs and parameters of the dense and the slim network (natkit.measure: conv + linear MACs).

Writes, per configuration tag ``N{generations}_e{epochs}`` (plus ``_<model>`` for a net other than vgg_small),
``results/ke/small_data_<tag>.json`` (every number), ``small_data_<tag>.md``, ``generations_<tag>.png`` and
``slim_vs_scratch_<tag>.png``; ``claims.json`` gathers the claims of every stored configuration. ``--render JSON`` redraws one from its stored numbers.
Resumable per seed: every finished (task, seed) run goes into ``small_data_<tag>.partial.json`` at once, and a
run stored with the same settings (in that file or in the finished ``small_data_<tag>.json``) is reused, so an
interrupted run continues where it stopped and ``--seeds 5`` after a 3-seed run trains only seeds 3 and 4;
each run records its own provenance.
Committed configurations (vgg_small): N=6 x e=3 (short generations; the default, ~4 minutes for 5 seeds), N=5 x e=30
(long generations, closer to the paper's train-to-convergence regime) and N=10 x e=15 (more generations at
the same total epochs), ~40 minutes each; resnet_small at N=10 x e=15 (a residual net, as in the paper, ~70 minutes).
``--pilot`` gives a 1-2 minute look.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

from benchmarks.perf.common import write_json  # atomic: never truncates a file holding finished runs
from natkit.data import load_task
from natkit.measure import measure
from natkit.methods.ke.method import evolve, slim_baseline
from natkit.methods.ke.split import scaled_arch
from natkit.nets import build_from_arch, create_model
from natkit.train import TrainConfig, calibration_batches, evaluate, recalibrate_bn, train
from natkit.report import stats
from natkit.report.provenance import provenance, stamp
from natkit.utils.seed import derive_seed


def one_seed(spec, seed, args, log):
    spc = args.samples_per_class if spec == "fashion-mnist" else None
    task = load_task(spec, seed=seed, samples_per_class=spc)
    res, ch = task.image_size, task.in_channels
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, weight_decay=args.weight_decay,
                      label_smoothing=args.label_smoothing)
    long_cfg = TrainConfig(**{**cfg.to_dict(), "epochs": args.epochs * args.generations})
    torch.manual_seed(derive_seed(seed, "init"))
    model = create_model(args.model, num_classes=task.num_classes, in_channels=ch)
    dense_cost = measure(model, res, ch)
    t0 = time.time()
    recal = []

    def on_generation(r):  # the slim network with re-estimated BN statistics, as a side measurement
        recalibrate_bn(r.slim_model, calibration_batches(task, min(1000, len(task.train)), 100, resolution=res,
                                                         channels=ch, seed=seed))
        recal.append(evaluate(r.slim_model, task, "test", resolution=res, channels=ch, limit=args.test_limit)["error"])
        log(f"  {spec} seed {seed} gen {r.generation}: dense {r.dense['error']:.4f} slim {r.slim['error']:.4f} "
            f"slim+BN recal {recal[-1]:.4f}")

    gens = evolve(model, task, args.split_rate, args.generations, cfg, seed=seed, resolution=res, channels=ch,
                  split="test", limit=args.test_limit, on_generation=on_generation)
    ke_s = time.time() - t0
    t0 = time.time()
    slim0 = slim_baseline(args.model, task, args.split_rate, long_cfg, seed=seed, resolution=res)
    scratch = evaluate(slim0, task, "test", resolution=res, channels=ch, limit=args.test_limit)["error"]
    slim_cost = measure(slim0, res, ch)
    out = {"task": spec, "seed": seed, "n_train": len(task.train), "resolution": res, "n_test_used": min(len(task.test),
           args.test_limit or len(task.test)), "dense_cost": dense_cost, "slim_cost": slim_cost,
           "slim_arch": scaled_arch(model.natkit_arch, args.split_rate),
           "dense_error": [g.dense["error"] for g in gens], "slim_error": [g.slim["error"] for g in gens],
           "slim_recal_error": recal,
           "slim_scratch_error": scratch, "seconds": {"ke": ke_s, "slim_scratch": time.time() - t0}}
    log(f"  {spec} seed {seed}: slim from scratch ({args.epochs * args.generations} epochs) {scratch:.4f}")
    if args.dense_long:
        t0 = time.time()
        torch.manual_seed(derive_seed(seed, "init"))
        dense0 = build_from_arch(model.natkit_arch)
        train(dense0, task, long_cfg, resolution=res, channels=ch, seed=derive_seed(seed, "train"))
        out["dense_long_error"] = evaluate(dense0, task, "test", resolution=res, channels=ch,
                                           limit=args.test_limit)["error"]
        out["seconds"]["dense_long"] = time.time() - t0
        log(f"  {spec} seed {seed}: dense from scratch ({args.epochs * args.generations} epochs) "
            f"{out['dense_long_error']:.4f}")
    return out


def ms(values) -> tuple[float, float]:
    s = stats.summarize(values)
    return s.mean, (s.sd if s.n > 1 else 0.0)


def pct(values) -> str:
    m, s = ms(values)
    return f"{100 * m:.2f} ± {100 * s:.2f} %"


def _resolution(run) -> int:
    """Input resolution of a stored run (older stored runs lack it: read it from the task)."""
    return run.get("resolution") or load_task(run["task"], seed=run["seed"]).image_size


def summarise(runs, args, tag):
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    summary, claims = {}, []
    N, e, s = args.generations, args.epochs, args.split_rate
    for t in tasks:
        rs = [r for r in runs if r["task"] == t]
        g1 = [r["dense_error"][0] for r in rs]
        gn = [r["dense_error"][-1] for r in rs]
        slim_n = [r["slim_error"][-1] for r in rs]
        slim_rc = [r["slim_recal_error"][-1] for r in rs]
        scratch = [r["slim_scratch_error"] for r in rs]
        macs_red = 1 - rs[0]["slim_cost"]["macs"] / rs[0]["dense_cost"]["macs"]
        params_red = 1 - rs[0]["slim_cost"]["params"] / rs[0]["dense_cost"]["params"]
        d_a = np.array(g1) - np.array(gn)
        d_b = np.array(scratch) - np.array(slim_n)
        summary[t] = {"dense_gen1": ms(g1), "dense_genN": ms(gn), "slim_genN": ms(slim_n), "slim_genN_bn_recal": ms(slim_rc),
                      "slim_scratch": ms(scratch), "gain_a_paired": ms(d_a), "gain_b_paired": ms(d_b),
                      "macs_reduction": macs_red, "params_reduction": params_red,
                      "dense_macs": rs[0]["dense_cost"]["macs"], "slim_macs": rs[0]["slim_cost"]["macs"]}
        setting = (f"{t}, n_train={rs[0]['n_train']}, {args.model} from scratch, KELS s={s}, N={N} generations x "
                   f"{e} epochs, test error over {len(rs)} seeds (mean ± sd, ddof=1)")
        claims.append({
            "claim": "KE improves the dense network over ordinary training (generation N vs generation 1)",
            "setting": setting, "ours": f"gen {N}: {pct(gn)} error", "baseline": f"gen 1: {pct(g1)} error",
            "holds": bool(np.mean(gn) < np.mean(g1)), "plot": f"results/ke/generations_{tag}.png",
            "paired_gain_pp": f"{100 * ms(d_a)[0]:.2f} ± {100 * ms(d_a)[1]:.2f}"})
        if args.dense_long:
            long = [r["dense_long_error"] for r in rs]
            d_l = np.array(long) - np.array(gn)
            summary[t]["dense_long"] = ms(long)
            summary[t]["gain_long_paired"] = ms(d_l)
            claims.append({
                "claim": "KE's dense gain is more than longer training (gen N vs dense from scratch, same epochs)",
                "setting": setting, "ours": f"gen {N}: {pct(gn)} error",
                "baseline": f"dense trained {N * e} epochs: {pct(long)} error",
                "holds": bool(np.mean(gn) < np.mean(long)), "plot": f"results/ke/generations_{tag}.png",
                "paired_gain_pp": f"{100 * ms(d_l)[0]:.2f} ± {100 * ms(d_l)[1]:.2f}"})
        claims.append({
            "claim": "KE's slim network beats the same-width network trained from scratch for the same epochs",
            "setting": setting, "ours": f"KE slim gen {N}: {pct(slim_n)} error",
            "baseline": f"width x{s} from scratch, {N * e} epochs: {pct(scratch)} error",
            "holds": bool(np.mean(slim_n) < np.mean(scratch)), "plot": f"results/ke/slim_vs_scratch_{tag}.png",
            "ours_bn_recalibrated": f"KE slim gen {N}, BN statistics re-estimated: {pct(slim_rc)} error",
            "paired_gain_pp": f"{100 * ms(d_b)[0]:.2f} ± {100 * ms(d_b)[1]:.2f}"})
        claims.append({
            "claim": "the slim network cuts inference cost (paper: 73% relative reduction at s=0.5, ResNet-18)",
            "setting": f"{t}, {args.model}, s={s}, conv + linear MACs at {_resolution(rs[0])} px",
            "ours": f"{100 * macs_red:.1f}% fewer MACs ({rs[0]['slim_cost']['macs']:,} vs "
                    f"{rs[0]['dense_cost']['macs']:,}), {100 * params_red:.1f}% fewer params",
            "baseline": f"dense: {rs[0]['dense_cost']['macs']:,} MACs", "holds": bool(macs_red >= 0.7),
            "plot": f"results/ke/slim_vs_scratch_{tag}.png"})
    return summary, claims


def plot(runs, summary, args, out, tag):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        rs = [r for r in runs if r["task"] == t]
        g = np.arange(1, args.generations + 1)
        for key, label, c, ls in (("dense_error", "KE dense", "C0", "-"),
                                  ("slim_error", "KE slim (fit hypothesis)", "C1", "-"),
                                  ("slim_recal_error", "KE slim, BN re-estimated", "C2", ":")):
            a = 100 * np.array([r[key] for r in rs])
            ax.errorbar(g, a.mean(0), yerr=stats.sd_axis0(a) if len(rs) > 1 else None, label=label, color=c,
                        marker="o", capsize=3, ls=ls)
        sc = 100 * np.array([r["slim_scratch_error"] for r in rs])
        ax.axhline(sc.mean(), color="C1", ls="--", label=f"slim from scratch, {args.generations * args.epochs} ep")
        if args.dense_long:
            dl = 100 * np.array([r["dense_long_error"] for r in rs])
            ax.axhline(dl.mean(), color="C0", ls="--", label=f"dense from scratch, {args.generations * args.epochs} ep")
        ax.set_title(f"{t} (n_train={rs[0]['n_train']}), s={args.split_rate}")
        ax.set_xlabel(f"generation ({args.epochs} epochs each)")
        ax.set_ylabel("test error (%)")
        ax.set_xticks(g)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"generations_{tag}.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = ["dense gen 1", f"dense gen {args.generations}", "slim scratch", f"KE slim gen {args.generations}"]
    keys = ["dense_gen1", "dense_genN", "slim_scratch", "slim_genN"]
    w = 0.8 / len(tasks)
    for i, t in enumerate(tasks):
        m = [100 * summary[t][k][0] for k in keys]
        s = [100 * summary[t][k][1] for k in keys]
        ax.bar(np.arange(len(keys)) + i * w, m, w, yerr=s, capsize=3,
               label=f"{t} (slim: {100 * summary[t]['macs_reduction']:.0f}% fewer MACs)")
    ax.set_xticks(np.arange(len(keys)) + w * (len(tasks) - 1) / 2, labels)
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / f"slim_vs_scratch_{tag}.png", dpi=120)
    plt.close(fig)


def markdown(summary, claims, args, elapsed) -> str:
    f = lambda v: f"{100 * v[0]:.2f} ± {100 * v[1]:.2f}"  # noqa: E731
    lines = [f"# Knowledge Evolution, small-data regime ({args.seeds} seeds, test error %, mean ± sd, ddof=1)", "",
             f"{args.model} from scratch, KELS s={args.split_rate}, N={args.generations} generations x {args.epochs} "
             f"epochs, SGD lr {args.lr} cosine per generation, batch {args.batch_size}; {elapsed / 60:.1f} min.", "",
             "| task | dense gen 1 | dense gen N | " + ("dense scratch N·e ep | " if args.dense_long else "")
             + "slim scratch N·e ep | KE slim gen N | KE slim gen N, BN re-estimated | slim MACs reduction |",
             "|---|---|---|" + ("---|" if args.dense_long else "") + "---|---|---|---|"]
    for t, s in summary.items():
        lines.append(f"| {t} | {f(s['dense_gen1'])} | {f(s['dense_genN'])} | "
                     + (f"{f(s['dense_long'])} | " if args.dense_long else "")
                     + f"{f(s['slim_scratch'])} | {f(s['slim_genN'])} | {f(s['slim_genN_bn_recal'])} | "
                     f"{100 * s['macs_reduction']:.1f}% |")
    lines += ["", "Verdicts under the registered rules (ke.* in benchmarks/claims.toml): results/CLAIMS.md. The "
              "comparisons below compare means only (not a verdict).", "",
              "| comparison | setting | ours | baseline | mean favours KE |", "|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c['claim']} | {c['setting']} | {c['ours']} | {c['baseline']} | {c['holds']} |")
    return "\n".join(lines) + "\n"


def _rendered_from(path, stored: dict) -> dict:
    """Provenance keys of a re-rendered file: what it was rendered from, and the provenance of the run that
    trained (kept through repeated renders)."""
    prov = stored.get("provenance") or {}
    return {"derived_from": path, "runs_predate_provenance": prov.get("runs_predate_provenance", not prov),
            "run_provenance": prov.get("run_provenance") or ({k: v for k, v in prov.items() if k != "derived_from"}
                                                              if prov and "derived_from" not in prov else None)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "results" / "ke"))
    p.add_argument("--tasks", default="digits,fashion-mnist")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--split-rate", type=float, default=0.5)
    p.add_argument("--model", default="vgg_small")
    p.add_argument("--samples-per-class", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)  # the paper's classification setting
    p.add_argument("--test-limit", type=int, default=3000, help="first N test images (speed)")
    p.add_argument("--dense-long", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--pilot", action="store_true", help="1 seed, 3 generations x 2 epochs")
    p.add_argument("--render", metavar="JSON", help="re-render tables, plots and claims from a stored run")
    args = p.parse_args(argv)
    if args.pilot:
        args.seeds, args.generations, args.epochs = 1, 3, 2
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        stored = json.loads(Path(args.render).read_text())
        args = argparse.Namespace(**{**vars(args), **stored["settings"], "out": str(out), "render": args.render})
        runs, elapsed = stored["runs"], stored["elapsed_s"]
    tag = (("pilot_" if args.pilot else "") + f"N{args.generations}_e{args.epochs}"
           + ("" if args.model == "vgg_small" else f"_{args.model}"))
    if not args.render:
        log = lambda m: print(m, flush=True)  # noqa: E731
        runs = resume_runs(out, tag, args, log)
        for spec in args.tasks.split(","):
            for seed in range(args.seeds):
                if any(r["task"] == spec and r["seed"] == seed for r in runs):
                    continue
                t_seed = time.time()
                run = one_seed(spec, seed, args, log)
                runs.append({**run, "provenance": provenance(t_seed)})
                write_json(out / f"small_data_{tag}.partial.json", {"settings": _same(vars(args)), "runs": runs})
        tasks = args.tasks.split(",")
        runs = sorted((r for r in runs if r["task"] in tasks and r["seed"] < args.seeds),
                      key=lambda r: (tasks.index(r["task"]), r["seed"]))
        elapsed = sum(sum(r["seconds"].values()) for r in runs)  # training time of the runs, reused ones included
    summary, claims = summarise(runs, args, tag)
    plot(runs, summary, args, out, tag)
    write_json(out / f"small_data_{tag}.json", stamp({
        "settings": {k: v for k, v in vars(args).items() if k != "render"}, "elapsed_s": elapsed,
        "threads": torch.get_num_threads(), "summary": summary, "runs": runs},
        **(_rendered_from(args.render, stored) if args.render else {})))
    (out / f"small_data_{tag}.md").write_text(markdown(summary, claims, args, elapsed))
    (out / f"small_data_{tag}.partial.json").unlink(missing_ok=True)
    if not args.pilot:
        write_claims(out)
    print(markdown(summary, claims, args, elapsed))


# settings that do not change a run's numbers: a stored run is reused when everything else is equal
_NOT_RUN_SETTINGS = ("out", "render", "seeds", "tasks")


def _same(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in _NOT_RUN_SETTINGS}


def resume_runs(out: Path, tag: str, args, log) -> list:
    """Runs already made with these settings, one per (task, seed): from the finished file of this
    configuration and from the partial file an interrupted run leaves (written after every seed), so that
    ``--seeds 5`` after a 3-seed run trains only seeds 3 and 4. A run taken from a finished file that predates
    per-run provenance gets the provenance of the run that trained it (of a re-rendered file: its
    ``run_provenance``)."""
    runs = {}
    for path in (out / f"small_data_{tag}.json", out / f"small_data_{tag}.partial.json"):
        if not path.is_file():
            continue
        stored = json.loads(path.read_text())
        if _same(stored["settings"]) != _same(vars(args)):
            log(f"  {path.name}: stored with other settings, not reused")
            continue
        prov = stored.get("provenance") or {}
        # a re-rendered file's own provenance is the render's; the training run's is its run_provenance
        prov = prov.get("run_provenance") or ({} if "derived_from" in prov else prov)
        for r in stored["runs"]:
            key = (r["task"], r["seed"])
            if key not in runs:
                runs[key] = r if "provenance" in r or not prov else {**r, "provenance": prov}
    if runs:
        log(f"  reusing {len(runs)} stored run(s): " + ", ".join(f"{t} seed {s}" for t, s in sorted(runs)))
    return list(runs.values())


def write_claims(out: Path) -> None:
    """The KE verdicts under the registered rules (``ke.*`` in benchmarks/claims.toml), re-derived from every
    stored KE output into results/ke/claims.json (only when ``out`` is results/ke)."""
    if Path(out).resolve() == (ROOT / "results" / "ke").resolve():
        from benchmarks.ke import verdicts

        verdicts.update()


if __name__ == "__main__":
    main()
