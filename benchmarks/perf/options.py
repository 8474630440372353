"""What the CPU offers beyond the plain loops: channels_last, inference_mode, larger eval batches, torch.compile.

Each experiment is a pair (baseline, variant) doing the same work, timed in interleaved rounds in one
process (order alternating); the verdict is the median over rounds of baseline time / variant time
(> 1: the variant is faster). Kept in natkit is what measured faster here; the decision and its
number are in results/perf/options.md.

Run: python -m benchmarks.perf.options   (about 10 min on 2 idle cores; --no-compile skips torch.compile)
Writes results/perf/options.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch

from benchmarks.perf.common import ROOT, median, stamp, write_json
from benchmarks.perf.throughput import build_network, plain_evaluate, plain_train, prepared


def supernet_pair():
    """Three sandwich steps (largest, smallest, 2 random subnets) of NAT's supernet, NCHW vs channels_last."""
    from natkit.data import load_task
    from natkit.methods.nat import supernet as S
    from natkit.methods.nat.options import load_nat_space
    from natkit.methods.nat.space import NATSpace
    from natkit.methods.nat.ofa_mbv3 import OFAMobileNetV3

    config = load_nat_space("nat_small")[0]
    src = load_task("fashion-mnist", seed=0, samples_per_class=500)
    space = NATSpace(config, num_classes=10, in_channels=1)
    big, small = space.extremes()
    torch.manual_seed(0)
    net0 = OFAMobileNetV3(config, 10, 1)

    def steps(memory_format):
        net = copy.deepcopy(net0)
        kept, S.MEMORY_FORMAT = S.MEMORY_FORMAT, memory_format
        try:
            S.train_supernet(net, space, src, epochs=1, batch_size=64, lr=0.05,
                             sampler=lambda rng: space.sample(1, rng)[0], n_sampled=2, teacher_genome=big,
                             extra_genomes=(small,), max_batches=3)
        finally:
            S.MEMORY_FORMAT = kept

    return (lambda: steps(torch.contiguous_format)), (lambda: steps(torch.channels_last))


def experiments(args, task):
    from natkit.train import TrainConfig, evaluate

    out = {"supernet sandwich steps: channels_last": supernet_pair()}
    for name in [n for n in args.networks.split(",") if n]:
        model0, res = build_network(name, task.num_classes, task.in_channels, 0)
        xtr, ytr = prepared(task, "train", args.n_train, res)
        xev, yev = prepared(task, "val", args.n_eval, res)
        cfg = TrainConfig(epochs=1, lr=0.05, batch_size=args.batch)
        cl0 = copy.deepcopy(model0).to(memory_format=torch.channels_last)

        def tr(m0, fmt=torch.contiguous_format, xtr=xtr, ytr=ytr, cfg=cfg):
            plain_train(copy.deepcopy(m0), xtr.contiguous(memory_format=fmt), ytr, cfg, seed=0)

        def ev_inference(m0=model0, xev=xev, yev=yev):
            m0.eval()
            with torch.inference_mode():
                sum(int((m0(xev[i: i + args.batch]).argmax(1) == yev[i: i + args.batch]).sum())
                    for i in range(0, len(yev), args.batch))

        out[f"{name} train: channels_last"] = (lambda m=model0, t=tr: t(m),
                                               lambda m=cl0, t=tr: t(m, torch.channels_last))
        out[f"{name} eval: channels_last"] = (lambda m=model0, x=xev, y=yev: plain_evaluate(m, x, y, args.batch),
                                              lambda m=cl0, x=xev, y=yev: plain_evaluate(
                                                  m, x.contiguous(memory_format=torch.channels_last), y, args.batch))
        out[f"{name} eval: inference_mode"] = (lambda m=model0, x=xev, y=yev: plain_evaluate(m, x, y, args.batch),
                                               ev_inference)
        out[f"{name} natkit evaluate: batch {args.big_batch} vs {args.batch}"] = (
            lambda m=model0, r=res: evaluate(m, task, "val", resolution=r, limit=args.n_eval, batch_size=args.batch),
            lambda m=model0, r=res: evaluate(m, task, "val", resolution=r, limit=args.n_eval,
                                             batch_size=args.big_batch))
        if args.compile and name in args.compile_networks.split(","):
            compiled = torch.compile(copy.deepcopy(model0))
            t0 = time.perf_counter()
            plain_evaluate(compiled, xev[: args.batch], yev[: args.batch], args.batch)
            compiled.train()
            plain_train(compiled, xtr[: 2 * args.batch], ytr[: 2 * args.batch], cfg, seed=0)
            out[f"{name} torch.compile: first-call cost"] = time.perf_counter() - t0
            out[f"{name} eval: torch.compile"] = (lambda m=model0, x=xev, y=yev: plain_evaluate(m, x, y, args.batch),
                                                  lambda m=compiled, x=xev, y=yev: plain_evaluate(m, x, y, args.batch))
            out[f"{name} train: torch.compile"] = (lambda m=model0, t=tr: t(m),
                                                   lambda m=compiled, x=xtr, y=ytr, c=cfg: plain_train(m, x, y, c, 0))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    ap.add_argument("--networks", default="vgg_small,resnet_small,densenet_small,nat_subnet")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--big-batch", type=int, default=1024)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-eval", type=int, default=3072)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--compile-networks", default="vgg_small,nat_subnet")
    args = ap.parse_args(argv)
    from natkit.data import load_task

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    t_start, load0 = time.time(), list(os.getloadavg())
    task = load_task("fashion-mnist", seed=0, samples_per_class=max(1, args.n_train // 10))
    exps = experiments(args, task)
    pairs = {k: v for k, v in exps.items() if isinstance(v, tuple)}
    times = {k: {"baseline": [], "variant": []} for k in pairs}
    for base, var in pairs.values():  # warm-up, untimed
        base(), var()
    for rnd in range(args.rounds):
        for k, (base, var) in pairs.items():
            for side in (("baseline", "variant") if rnd % 2 == 0 else ("variant", "baseline")):
                fn = base if side == "baseline" else var
                t0 = time.perf_counter()
                fn()
                times[k][side].append(time.perf_counter() - t0)
        print(f"round {rnd} done (load {os.getloadavg()[0]:.1f})", flush=True)
    rows = {}
    for k, t in times.items():
        speedups = [b / v for b, v in zip(t["baseline"], t["variant"])]
        rows[k] = {"baseline_s": median(t["baseline"]), "variant_s": median(t["variant"]),
                   "speedup": median(speedups), "speedup_per_round": [round(x, 3) for x in speedups]}
    extra = {k: v for k, v in exps.items() if not isinstance(v, tuple)}
    data = {"setting": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows, "one_off_seconds": extra,
            "load_avg_start": load0, "stamp": stamp(t_start)}
    write_json(Path(args.out) / "options.json", data)
    write_md(Path(args.out) / "options.md", data)
    for k, r in rows.items():
        print(f"{k}: {r['speedup']:.2f}x")
    return data


KEPT = {  # what natkit does with each finding (stated, not inferred: the numbers above decide it)
    "supernet sandwich steps: channels_last": "kept: NAT's train_supernet runs the supernet in channels_last",
    "standalone nets with depthwise convolutions, channels_last": "measured faster for the NAT subnet (train "
    "and eval) but not yet applied to natkit.train.train (NAT's optional standalone fine-tuning is its only user "
    "today); VGG/ResNet/DenseNet were not measured in this run",
    "inference_mode": "not kept: within noise of no_grad",
    "larger eval batches": "not kept: batch 1024 measured slower than natkit's default 256",
    "torch.compile (CPU)": "not measured to the end: its first compilation did not finish within the session "
    "on the shared machine (run with --compile-networks vgg_small on an idle machine)",
}


def write_md(path: Path, data):
    st = data["stamp"]
    lines = ["# Hardware options on CPU: measured, then kept or not", "",
             f"Fashion-MNIST, one process, {st['cpu']['torch_threads']} torch threads, {data['setting']['rounds']} "
             f"interleaved rounds; speed-up = baseline time / variant time (median of per-round ratios). Load average "
             f"{', '.join(f'{x:.1f}' for x in data['load_avg_start'])} at the start, "
             f"{', '.join(f'{x:.1f}' for x in st['load_avg'])} at the end, on {st['cpu']['count']} cores "
             "(the machine was shared: small differences are noise).", "",
             "| experiment | baseline (s) | variant (s) | speed-up | per round |", "|---|---|---|---|---|"]
    for k, r in data["rows"].items():
        lines.append(f"| {k} | {r['baseline_s']:.3f} | {r['variant_s']:.3f} | {r['speedup']:.2f}x | "
                     f"{', '.join(str(x) for x in r['speedup_per_round'])} |")
    for k, v in data["one_off_seconds"].items():
        lines.append(f"\n{k}: {v:.1f} s (paid once per model and input shape)")
    lines += ["", "Kept:", *[f"- {k}: {v}" for k, v in KEPT.items()], "",
              f"Command: `{st['command']}`; commit {st['commit'][:10]}{' (dirty)' if st['dirty'] else ''}."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
