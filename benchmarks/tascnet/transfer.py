"""TASCNet vs conventional transfer, and TASCNet stage 2 vs L1-magnitude pruning at the same MACs.

Source: Fashion-MNIST (``--source-per-class`` train images per class, 28 px), pretrained once by
``natkit.train.pretrained`` and cached. Target: scikit-learn ``digits`` (1,151 train / 287 val /
359 test images, 8x8 resized to 28 px). Networks: ``vgg_small`` and ``resnet_small``. One thread.

For each network, one ``natkit search tascnet`` run (``natkit.methods.tascnet.method.run``) with a fixed k
(the last k conv/dense layers before the output are searched), NSGA-II over (error, params, macs)
in stage 1, the most accurate stage-1 network compressed in stage 2 as in the paper (``--choose knee``
for natkit's default) (itself NSGA-II over per-layer pair shares and
the tolerance). Then, in the same process and from the same cached source model:

1. Conventional transfer: the full pretrained network with a new head (trained first, as in
   TASCNet), then its deeper layers (the same k layers, the output layer and everything that runs
   after the first of them) fine-tuned with their pretrained weights for as many epochs as the
   longest-trained TASCNet candidate received after the head
   (E + s2_epochs * (1 + iterations) + s2_final_epochs).
   A second row fine-tunes all layers for the same epochs.
   Claim: TASCNet's final front holds a network with equal or better test accuracy and at least
   50 % fewer parameters and MACs. The member is picked on validation only: the smallest-MACs
   front member whose val accuracy is at least the baseline's (else the most accurate member).
2. ``natkit search width`` on the same target, seed, device (cpu) and threads (1), through
   ``natkit.api.run_search``, with ``time_limit`` = TASCNet's measured search wall time (the source
   network is pretrained or loaded before TASCNet's search starts, so its time is the search's alone),
   into its own archive (``archive_width_<net>.sqlite``). pymoo stops it at the first generation boundary
   after the limit (8 candidates per generation): width may overrun by up to one generation, in its favour,
   and the overrun is recorded. Comparison (registered ``tascnet.vs_width_same_wall_time``): TASCNet's
   member above against width's archived network with the lowest val error among those with MACs at
   most the member's + 1%; test accuracy side by side.
3. Stage 2 vs Torch-Pruning's L1-magnitude channel pruning (``natkit.baselines.l1.l1_to_macs``: global
   L1 ranking, the step nearest the target, MACs matched within 1% or no comparison) applied to the same
   stage-2 starting network (the chosen stage-1 network after its recorded fine-tune) down to each
   stage-2 front member's MACs (members the method returns or kept on the way; iterations it rejected
   for leaving the tolerance are not compared), then fine-tuned for as many epochs as that member
   received in stage 2. Accuracy side by side on the test split.

Writes results/tascnet/{claims.json, transfer.json, transfer.md, transfer_<net>.png,
stage2_vs_l1_<net>.png, archive_<net>.sqlite, archive_width_<net>.sqlite}. One seed took 6.3-8.2 minutes
before the width step (results/tascnet/[seeds/seed*/]transfer.json, total_seconds); the width step adds
about TASCNet's search time again (~1.5-2 min for vgg_small, ~3-4.5 for resnet_small). ``--quick`` is a
smoke test whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

from natkit.api import make_context, run_search
from natkit.core.archive import Archive
from natkit.data import load_task
from natkit.methods.common import source_task
from natkit.methods.tascnet import layers as L
from natkit.methods.tascnet import method as T
from natkit.nets.io import load_model
from natkit.baselines.l1 import l1_to_macs
from natkit.report.provenance import stamp
from natkit.errors import NatkitError
from natkit.train import pretrained

FULL = {
    "vgg_small": dict(k="2", epochs="3", s2_epochs="2", s2_iterations="3", s2_final_epochs="2", generations=2,
                      pop=6, s2_pop="6", s2_generations="2"),
    "resnet_small": dict(k="2", epochs="3", s2_epochs="2", s2_iterations="3", s2_final_epochs="2", generations=2,
                         pop=6, s2_pop="6", s2_generations="2"),
}
QUICK = dict(k="1", epochs="1", s2_epochs="1", s2_iterations="1", s2_final_epochs="1", generations=1, pop=3,
             s2_pop="2", s2_generations="1", max_batches="4")


# the width search given TASCNet's wall time: generations high enough that the time limit is what stops it;
# a small population, because pymoo checks the time between generations (the overrun is at most one generation)
WIDTH = dict(generations=10_000, pop_size=8)
WIDTH_QUICK = dict(generations=50, pop_size=3)
MAC_MATCH = 0.01  # width's member: MACs at most the TASCNet member's + 1%


def warm_source(net, args) -> float:
    """Pretrain (or load) the seed's source network before the timed search, so TASCNet's wall time, which
    width then gets, does not include a one-off pretraining that is cached for the baselines too."""
    t0 = time.time()
    source = load_task("fashion-mnist", seed=args.seed, samples_per_class=args.source_per_class)
    pretrained(net, source, epochs=float(args.source_epochs), resolution=28, seed=args.seed, in_channels=1)
    return time.time() - t0


def run_tascnet(net, cfg, out, args):
    """One ``natkit search tascnet`` run through ``natkit.api.run_search`` (one thread); returns a context on
    its archive and run for the comparisons below, and the search's wall time."""
    run_dir = out / "runs" / net
    if run_dir.exists():
        shutil.rmtree(run_dir)
    options = {"model": net, "resolution": "28", "pretrain_samples": str(args.source_per_class),
               "pretrain_epochs": str(args.source_epochs), "head_epochs": "2", "choose": args.choose,
               **{k: v for k, v in cfg.items() if k not in ("generations", "pop", "s2_pop")},
               "s2_pop_size": cfg["s2_pop"]}
    res = run_search("tascnet", out=run_dir, task="digits", options=options, seed=args.seed,
                     objectives="error,params,macs", generations=cfg["generations"], pop_size=cfg["pop"],
                     keep_models="all", source="fashion-mnist", threads=1, device="cpu")
    ctx = make_context("tascnet", task=load_task("digits", seed=args.seed), out_dir=run_dir,
                       archive=Archive(res.archive_path), run_id=res.run_id, options=res.options, seed=args.seed,
                       objectives=list(res.objectives), keep_models="all", source_spec="fashion-mnist",
                       device="cpu", verbose=False)
    ctx.stats.update(res.stats)
    return ctx, res.seconds


def run_width(net, seconds, out, args):
    """``natkit search width`` on the same target, seed, device and threads, with ``time_limit`` = TASCNet's
    measured search wall time, into its own archive; returns (summary, context on its run)."""
    run_dir = out / "runs" / f"width_{net}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = dict(WIDTH_QUICK if args.quick else WIDTH)
    options = {"time_limit": f"{seconds:.3f}"}
    res = run_search("width", out=run_dir, task="digits", options=options, quick=args.quick, seed=args.seed,
                     objectives="error,macs",
                     generations=cfg["generations"], pop_size=cfg["pop_size"], keep_models="front", threads=1,
                     device="cpu")
    ctx = make_context("width", task=load_task("digits", seed=args.seed), out_dir=run_dir,
                       archive=Archive(res.archive_path), run_id=res.run_id, options=res.options, seed=args.seed,
                       objectives=list(res.objectives), device="cpu", verbose=False)
    st = res.stats
    summary = {"time_limit": round(seconds, 1), "search_seconds": round(res.seconds, 1),
               "overrun": round(res.seconds / seconds - 1, 3), "generations_done": st.get("generations_done"),
               "generation_cap": cfg["generations"], "pop_size": cfg["pop_size"], "stopped_by": st.get("stopped_by"),
               "real_evaluations": st.get("real_evaluations"), "options": res.options.to_dict()}
    return summary, ctx


def width_member(wctx, tascnet_macs):
    """Validation selection at matched or lower MACs: among width's archived ``ok`` evaluations with MACs at
    most the TASCNet member's + 1% and not at chance level (as on every front), the lowest val error (then
    fewer MACs). It lies on width's (error, MACs) front, whose test error the run reported. None when width
    has no such network."""
    cands = [c for c in wctx.archive.candidates(run_id=wctx.run_id, status="ok")
             if c.macs is not None and c.macs <= (1 + MAC_MATCH) * tascnet_macs and not c.extra.get("chance")]
    if not cands:
        return None
    return min(cands, key=lambda c: (c.error, c.macs))


def setting_of(ctx, net):
    o = ctx.options
    return T.Setting(ctx.task, 28, 1, ctx.device, o.lr, o.finetune_lr, o.batch_size, o.max_batches), o


def conventional(ctx, net, args, s, o, epochs, scope):
    """Full pretrained network, new head trained first, then deeper (or all) layers fine-tuned."""
    source = source_task(ctx, samples_per_class=o.pretrain_samples)
    base = pretrained(net, source, epochs=o.pretrain_epochs, resolution=28, seed=ctx.seed, in_channels=1)
    head = T.transfer_head(base, s, epochs=o.head_epochs, seed=ctx.seed)
    model = T.unfreeze(copy.deepcopy(head))
    if scope == "deeper":
        keep = {id(p) for p in L.deeper_parameters(model, s.example, int(o.k))}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        params = L.trainable_parameters(model)
    else:
        params = None
    t0 = time.time()
    s.fit(model, epochs, seed=ctx.seed, lr=o.finetune_lr, params=params)
    # the frozen part keeps its pretrained BN statistics only in the "deeper" variant, as in TASCNet
    row = {"scope": scope, "epochs": epochs, "val_acc": 1 - s.error(model), "test_acc": 1 - s.error(model, "test"),
           **s.measure(model), "seconds": round(time.time() - t0, 1),
           "trainable_params": sum(p.numel() for p in (params or model.parameters()))}
    return row


MAC_TOLERANCE = 0.01


def stage2_vs_l1(ctx, s, o, limit=2):
    """L1-magnitude pruning of the stage-2 starting network to each stage-2 front member's MACs."""
    cands = ctx.archive.candidates(method="tascnet", run_id=ctx.run_id, status="ok")
    start = next(c for c in cands if isinstance(c.encoding, dict) and c.encoding.get("iteration") == 0)
    front = ctx.archive.front(ctx.objectives, run_id=ctx.run_id)
    # stage 2's outputs: kept networks, not the iterations the method itself rejected (beyond tolerance)
    ours = [c for c in front if c.extra.get("stage") == 2 and c.id != start.id
            and c.extra.get("within_tolerance", True)]
    ours = sorted(ours, key=lambda c: c.macs)
    if len(ours) > limit:  # spread over the MAC range
        idx = np.unique(np.linspace(0, len(ours) - 1, limit).round().astype(int))
        ours = [ours[i] for i in idx]
    rows = []
    for c in ours:
        its = c.extra.get("iterations", c.extra.get("iteration", 0))
        epochs = o.s2_epochs * max(int(its), 1)
        final = float(c.extra.get("final_epochs", 0) or 0)
        model = T.unfreeze(load_model(ctx.model_dir / str(start.id)))
        try:  # registered protocol: MACs matched within 1% (one bisected uniform L1 ratio)
            model, gap = l1_to_macs(model, s.example, c.macs, tolerance=MAC_TOLERANCE)
        except NatkitError as exc:
            rows.append({"candidate": c.id, "ours_macs": c.macs, "unmatched": str(exc)})
            continue
        # the same schedule as the stage-2 member: constant-lr epochs, then its closing cosine fine-tune
        s.fit(model, epochs, seed=ctx.seed, lr=o.finetune_lr, schedule="constant")
        if final > 0:
            s.fit(model, final, seed=ctx.seed + 7, lr=o.finetune_lr, schedule="cosine")
            epochs += final
        m = s.measure(model)
        ours_model = load_model(ctx.model_dir / str(c.id))
        rows.append({"candidate": c.id, "iterations": its, "finetune_epochs": epochs, "macs_gap": gap,
                     "ours_macs": c.macs, "ours_params": c.params, "ours_val_acc": 1 - c.error,
                     "ours_test_acc": 1 - s.error(ours_model, "test"),
                     "l1_macs": m["macs"], "l1_params": m["params"], "l1_val_acc": 1 - s.error(model),
                     "l1_test_acc": 1 - s.error(model, "test")})
    return start, rows


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def pick_member(front, baseline_val_acc):
    ok = [c for c in front if 1 - c.error >= baseline_val_acc]
    if ok:
        return min(ok, key=lambda c: (c.macs, c.params)), "smallest MACs with val acc >= baseline's"
    return min(front, key=lambda c: (c.error, c.macs)), "no member reached the baseline's val acc: most accurate"


def plot_transfer(ctx, net, conv_rows, member, path, width=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = [c for c in ctx.archive.candidates(method="tascnet", run_id=ctx.run_id, status="ok")]
    front = {c.id for c in ctx.archive.front(ctx.objectives, run_id=ctx.run_id)}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for stage, colour in ((1, "tab:blue"), (2, "tab:orange")):
        cs = [c for c in cands if c.extra.get("stage") == stage]
        ax.scatter([c.macs / 1e6 for c in cs], [100 * (1 - c.error) for c in cs], s=18, alpha=0.5, c=colour,
                   label=f"stage {stage} candidates (val)")
    fc = sorted([c for c in cands if c.id in front and c.test_error is not None], key=lambda c: c.macs)
    ax.plot([c.macs / 1e6 for c in fc], [100 * (1 - c.test_error) for c in fc], "k.-", label="final front (test)")
    for r, marker in zip(conv_rows, ("*", "P")):
        ax.scatter([r["macs"] / 1e6], [100 * r["test_acc"]], marker=marker, s=140, c="tab:red",
                   label=f"conventional, {r['scope']} layers (test)")
    if width:
        wf = [c for c in width["front"] if c["test_acc"] is not None]
        ax.plot([c["macs"] / 1e6 for c in wf], [100 * c["test_acc"] for c in wf], "s--", c="tab:green", ms=4,
                label="width search, same wall time, front (test)")
    ax.scatter([member.macs / 1e6], [100 * (1 - member.test_error)], marker="o", s=120, facecolors="none",
               edgecolors="k", label="picked member (test)")
    ax.set_xlabel("MACs (millions, one 28x28 image)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"TASCNet on digits from Fashion-MNIST: {net}")
    lo = min([100 * (1 - c.error) for c in cands if c.extra.get("stage") == 2] + [100 * r["test_acc"] for r in conv_rows])
    ax.set_ylim(max(0, lo - 5), 100)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_l1(rows, net, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot([r["ours_macs"] / 1e6 for r in rows], [100 * r["ours_test_acc"] for r in rows], "o-",
            label="TASCNet stage 2 (trajectory similarity)")
    ax.plot([r["l1_macs"] / 1e6 for r in rows], [100 * r["l1_test_acc"] for r in rows], "s--",
            label="Torch-Pruning L1 magnitude")
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Stage 2 vs L1 magnitude at the same MACs: {net}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "results" / "tascnet"))
    ap.add_argument("--nets", default="vgg_small,resnet_small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source-per-class", type=int, default=1000)
    ap.add_argument("--source-epochs", type=int, default=3)
    ap.add_argument("--choose", default="best",
                    help="stage-1 network to compress: best (the paper: stage 1 returns its most accurate "
                         "network), knee (natkit's default), or a candidate id")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    claims, report = [], {"setting": {}, "nets": {}}
    for net in [n.strip() for n in args.nets.split(",") if n.strip()]:
        cfg = dict(QUICK) if args.quick else dict(FULL[net])
        print(f"=== {net}: TASCNet search ===", flush=True)
        warm = warm_source(net, args)
        ctx, seconds = run_tascnet(net, cfg, out, args)
        s, o = setting_of(ctx, net)
        epochs = float(o.epochs) + o.s2_epochs * (1 + o.s2_iterations) + float(o.s2_final_epochs)
        print(f"=== {net}: conventional transfer, {epochs:g} epochs ===", flush=True)
        conv_rows = [conventional(ctx, net, args, s, o, epochs, scope) for scope in ("deeper", "all")]
        base_row = conv_rows[0]
        front = ctx.archive.front(ctx.objectives, run_id=ctx.run_id)
        member, rule = pick_member(front, base_row["val_acc"])
        m_test = 1 - member.test_error
        p_red = 1 - member.params / base_row["params"]
        m_red = 1 - member.macs / base_row["macs"]
        holds = bool(m_test >= base_row["test_acc"] and p_red >= 0.5 and m_red >= 0.5)
        png = out / f"transfer_{net}.png"
        setting = (f"choose={args.choose}; fashion-mnist ({args.source_per_class}/class, {args.source_epochs} ep) -> digits, {net} at "
                   f"28 px, k={o.k}, E={o.epochs:g}, stage 1 NSGA-II {cfg['pop']}x{cfg['generations']}, stage 2 "
                   f"NSGA-II {o.s2_pop_size}x{o.s2_generations}, {o.s2_iterations} iterations x {o.s2_epochs} ep "
                   f"+ {o.s2_final_epochs:g} closing ep; "
                   f"baseline fine-tunes the same deeper layers {epochs:g} epochs")
        claims.append({
            "claim": "TASCNet's final front has a network with equal or better test accuracy than conventional "
                     "transfer and >= 50% fewer parameters and MACs",
            "setting": setting,
            "ours": f"candidate {member.id} (stage {member.extra.get('stage')}, {rule}): test acc "
                    f"{100 * m_test:.2f}%, {member.params:,.0f} params (-{100 * p_red:.0f}%), "
                    f"{member.macs:,.0f} MACs (-{100 * m_red:.0f}%)",
            "baseline": f"conventional transfer: test acc {100 * base_row['test_acc']:.2f}%, "
                        f"{base_row['params']:,} params, {base_row['macs']:,} MACs (all layers fine-tuned: "
                        f"{100 * conv_rows[1]['test_acc']:.2f}%)",
            "holds": holds, "plot": rel(png)})
        print(claims[-1], flush=True)

        print(f"=== {net}: width search given TASCNet's wall time ({seconds:.0f} s) ===", flush=True)
        width, wctx = run_width(net, seconds, out, args)
        w = width_member(wctx, member.macs)
        width["member"] = None if w is None else {
            "id": w.id, "val_acc": 1 - w.error, "test_acc": None if w.test_error is None else 1 - w.test_error,
            "params": w.params, "macs": w.macs, "rule": f"lowest val error with MACs <= TASCNet member's + "
                                                        f"{MAC_MATCH:.0%}"}
        width["tascnet_member_macs"] = member.macs
        width["front"] = [{"id": c.id, "val_acc": 1 - c.error,
                           "test_acc": None if c.test_error is None else 1 - c.test_error, "macs": c.macs,
                           "params": c.params} for c in sorted(wctx.archive.front(wctx.objectives, run_id=wctx.run_id),
                                                               key=lambda c: c.macs)]
        print(f"width: {width['real_evaluations']} evaluations in {width['search_seconds']:.0f} s "
              f"({width['generations_done']} generations, stopped by {width['stopped_by']}); member "
              f"{width['member']}", flush=True)
        wctx.archive.close()
        shutil.copy(wctx.archive.path, out / f"archive_width_{net}.sqlite")
        plot_transfer(ctx, net, conv_rows, member, png, width)
        if width["member"] and width["member"]["test_acc"] is not None:
            wm = width["member"]
            claims.append({
                "claim": "TASCNet's val-selected member is at least as accurate as the most val-accurate network a "
                         "width search finds in the same wall time at matched or lower MACs",
                "setting": f"{net}: width (NSGA-II {width['pop_size']} per generation, {width['real_evaluations']} "
                           f"candidates trained from scratch) with time_limit = TASCNet's {seconds:.0f} s, ran "
                           f"{width['search_seconds']:.0f} s; width member: lowest val error with MACs <= "
                           f"{(1 + MAC_MATCH) * member.macs:,.0f}",
                "ours": f"candidate {member.id}: test acc {100 * m_test:.2f}%, {member.macs:,.0f} MACs",
                "baseline": f"width candidate {wm['id']}: test acc {100 * wm['test_acc']:.2f}%, {wm['macs']:,.0f} MACs",
                "holds": bool(m_test >= wm["test_acc"]), "plot": rel(png)})
            print(claims[-1], flush=True)

        print(f"=== {net}: stage 2 vs L1 magnitude ===", flush=True)
        start, all_rows = stage2_vs_l1(ctx, s, o)
        rows = [r for r in all_rows if "unmatched" not in r]  # MACs not matched within 1%: no comparison
        png2 = out / f"stage2_vs_l1_{net}.png"
        if rows:
            plot_l1(rows, net, png2)
            diff = float(np.mean([r["ours_test_acc"] - r["l1_test_acc"] for r in rows]))
            claims.append({
                "claim": "stage 2 (most similar filter trajectories) is at least as accurate as L1-magnitude "
                         "channel pruning at the same MACs",
                "setting": f"{net}: both prune the same fine-tuned stage-1 network (candidate {start.id}) to the "
                           f"MACs of {len(rows)} stage-2 front members, same fine-tuning epochs",
                "ours": "; ".join(f"{r['ours_macs'] / 1e6:.2f}M MACs: {100 * r['ours_test_acc']:.2f}%" for r in rows),
                "baseline": "; ".join(f"{r['l1_macs'] / 1e6:.2f}M MACs: {100 * r['l1_test_acc']:.2f}%" for r in rows),
                "holds": bool(diff >= 0),
                "plot": str(png2.relative_to(ROOT)) if png2.is_relative_to(ROOT) else str(png2)})
            print(claims[-1], flush=True)
        report["nets"][net] = {
            "config": cfg, "search_seconds": round(seconds, 1), "source_warm_seconds": round(warm, 1),
            "stats": ctx.stats, "conventional": conv_rows, "width_same_time": width,
            "picked": {"id": member.id, "stage": member.extra.get("stage"), "rule": rule, "val_acc": 1 - member.error,
                       "test_acc": m_test, "params": member.params, "macs": member.macs},
            "front": [{"id": c.id, "stage": c.extra.get("stage"), "val_acc": 1 - c.error,
                       "test_acc": None if c.test_error is None else 1 - c.test_error, "params": c.params,
                       "macs": c.macs} for c in sorted(front, key=lambda c: c.macs)],
            "stage2_vs_l1": all_rows}
        # keep the archive, drop the stored models (they are reproducible from the archive and seed)
        ctx.archive.close()  # checkpoints the WAL into the file before it is copied
        shutil.copy(ctx.archive.path, out / f"archive_{net}.sqlite")
        shutil.rmtree(out / "runs" / net, ignore_errors=True)
        shutil.rmtree(out / "runs" / f"width_{net}", ignore_errors=True)
    report["setting"] = {"threads": torch.get_num_threads(), "quick": args.quick, "seed": args.seed,
                         "total_seconds": round(time.time() - t_all, 1)}
    shutil.rmtree(out / "runs", ignore_errors=True)
    (out / "transfer.json").write_text(json.dumps(stamp(report, t_all), indent=2, default=str))
    write_md(out / "transfer.md", claims, report)
    if out.resolve() == (ROOT / "results" / "tascnet").resolve():
        from benchmarks.tascnet import verdicts

        verdicts.update()
    print(f"done in {report['setting']['total_seconds'] / 60:.1f} min; results in {out}")
    return 0


def write_md(path, claims, report):
    lines = ["# TASCNet benchmarks", "", f"Total time: {report['setting']['total_seconds'] / 60:.1f} min, "
             f"{report['setting']['threads']} thread(s){' (quick: numbers mean nothing)' if report['setting']['quick'] else ''}.",
             "", "One seed. digits has 287 validation and 359 test images: one test image is 0.28 points, so "
             "differences of a point or two are within noise; candidates are picked on validation only.",
             "", "| claim | setting | ours | baseline | holds |", "|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c['claim']} | {c['setting']} | {c['ours']} | {c['baseline']} | {'yes' if c['holds'] else 'NO'} |")
    for net, r in report["nets"].items():
        lines += ["", f"## {net}", "", "Conventional transfer:", "",
                  "| layers fine-tuned | epochs | val acc | test acc | params | MACs |", "|---|---|---|---|---|---|"]
        for row in r["conventional"]:
            lines.append(f"| {row['scope']} | {row['epochs']:g} | {100 * row['val_acc']:.2f} | {100 * row['test_acc']:.2f} "
                         f"| {row['params']:,} | {row['macs']:,} |")
        lines += ["", "Final TASCNet front (error, params, MACs; val picks, test reported):", "",
                  "| id | stage | val acc | test acc | params | MACs |", "|---|---|---|---|---|---|"]
        for c in r["front"]:
            t = "" if c["test_acc"] is None else f"{100 * c['test_acc']:.2f}"
            lines.append(f"| {c['id']} | {c['stage']} | {100 * c['val_acc']:.2f} | {t} | {c['params']:,.0f} | {c['macs']:,.0f} |")
        w = r.get("width_same_time")
        if w:
            lines += ["", f"Width search given TASCNet's wall time ({w['time_limit']:g} s): ran "
                      f"{w['search_seconds']:g} s, "
                      f"{w['generations_done']} generations x {w['pop_size']}, {w['real_evaluations']} evaluations, "
                      f"stopped by {w['stopped_by']}. Member (lowest val error with MACs <= TASCNet member's + 1%): "
                      + ("none" if not w["member"] else
                         f"candidate {w['member']['id']}, val acc {100 * w['member']['val_acc']:.2f}, test acc "
                         f"{'' if w['member']['test_acc'] is None else format(100 * w['member']['test_acc'], '.2f')}, "
                         f"{w['member']['macs']:,.0f} MACs") + "."]
        if r["stage2_vs_l1"]:
            lines += ["", "Stage 2 vs L1 magnitude (same start network, same fine-tuning epochs, MACs matched within "
                      "1%):", "", "| ours MACs | ours test acc | L1 MACs | MAC gap | L1 test acc |",
                      "|---|---|---|---|---|"]
            for row in r["stage2_vs_l1"]:
                if "unmatched" in row:
                    lines.append(f"| {row['ours_macs']:,.0f} | | not matched: {row['unmatched']} | | |")
                    continue
                lines.append(f"| {row['ours_macs']:,.0f} | {100 * row['ours_test_acc']:.2f} | {row['l1_macs']:,} "
                             f"| {100 * row['macs_gap']:+.2f}% | {100 * row['l1_test_acc']:.2f} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
