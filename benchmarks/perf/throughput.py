"""natkit's `train` and `evaluate` against a minimal hand-written PyTorch loop: images per second.

Same model (same initial weights), same images, same optimiser (SGD, Nesterov momentum, weight decay,
cosine schedule), same torch threads, in ONE process. Each round times, for every network and batch
size, natkit then plain (or plain then natkit: the order alternates between rounds), and the claim
reads the median over rounds of the per-round ratio natkit / plain, so drifting load from other jobs
on the shared machine hits both sides of a ratio alike.

The plain loop is what one writes by hand: images normalised once up front, a seeded permutation,
slice, forward, cross-entropy, zero_grad, backward, step. Evaluation: ``torch.no_grad`` forward over
the same images counting correct predictions.

Run: python -m benchmarks.perf.throughput            (about 10 min on 2 idle cores)
Writes results/perf/throughput.{json,md} and results/perf/claims.json (claims perf.throughput.train,
perf.throughput.evaluate). ``--rejudge PART=FILE`` judges stored runs again without timing anything.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.perf.common import ROOT, median, stamp, write_json
from benchmarks.verdicts import judge
from natkit.report.claims import ClaimResult
from natkit.report.claims import write_claims as write_claims_file
from natkit.report.provenance import provenance

NETWORKS = ["vgg_small", "resnet_small", "densenet_small", "nat_subnet"]
CLAIM_IDS = {"train": "perf.throughput.train", "evaluate": "perf.throughput.evaluate"}  # benchmarks/claims.toml
# a mid-sized subnet of the nat_small space at 28 px: width 1.0, three layers per stage, kernel 5, expand 4
NAT_GENOME = [1, 0] + [5, 5, 5, 0] * 5


def build_network(name: str, num_classes: int, in_channels: int, seed: int):
    from natkit.nets import create_model
    from natkit.utils.seed import seed_everything

    seed_everything(seed)
    if name != "nat_subnet":
        return create_model(name, num_classes=num_classes, in_channels=in_channels), None
    from natkit.methods.nat.method import load_nat_space
    from natkit.methods.nat.space import NATSpace

    config = load_nat_space("nat_small")[0]
    arch = NATSpace(config, num_classes=num_classes, in_channels=in_channels).decode(NAT_GENOME)
    kwargs = {k: v for k, v in arch.items() if k not in ("num_classes", "in_channels", "genome")}
    model = create_model("mbv3_subnet", num_classes=num_classes, in_channels=in_channels, **kwargs)
    return model, int(arch["resolution"])


# ------------------------------------------------------------------------------------------------
# the plain loops (the reference)


def plain_optimizer(model, cfg, steps):
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=True)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)


def plain_train(model, x, y, cfg, seed: int) -> None:
    torch.manual_seed(seed)
    model.train()
    n, b = len(y), cfg.batch_size
    opt, sched = plain_optimizer(model, cfg, math.ceil(n / b))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for i in range(0, n, b):
        idx = order[i: i + b]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


@torch.no_grad()
def plain_evaluate(model, x, y, batch_size: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i: i + batch_size]).argmax(1) == y[i: i + batch_size]).sum())
    return 1 - correct / len(y)


# ------------------------------------------------------------------------------------------------


def load_data(n_train: int, n_eval: int, seed: int):
    from natkit.data import load_task

    task = load_task("fashion-mnist", seed=seed, samples_per_class=math.ceil(n_train / 10))
    return task


def prepared(task, split: str, n: int | None, resolution):
    """What a hand-written loop holds: the split normalised (and resized) once, up front."""
    s = task.split(split)
    x, y = (s.x, s.y) if n is None else (s.x[:n], s.y[:n])
    return task.transform(x, resolution).contiguous(), y


def measure_pair(name, batch, task, data, args, rnd, rows, warm: bool = False):
    """Time natkit and plain on one network and batch size; ``warm``: a few batches only, untimed use."""
    from natkit.train import TrainConfig, evaluate, train

    model0, res = data["models"][name]
    xtr, ytr, xev, yev = data[(name, "train")] + data[(name, "eval")]
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=batch, max_batches=2 if warm else None)
    if warm:
        xtr, ytr, xev, yev = xtr[: 2 * batch], ytr[: 2 * batch], xev[: 2 * batch], yev[: 2 * batch]
    n_train, n_eval = len(ytr), len(yev)
    row = rows.setdefault(f"{name}@{batch}", {"network": name, "batch": batch, "resolution": res or 28,
                                              "n_train": n_train, "n_eval": n_eval,
                                              "train_s": {"natkit": [], "plain": []},
                                              "eval_s": {"natkit": [], "plain": []}})
    order = ["natkit", "plain"] if rnd % 2 == 0 else ["plain", "natkit"]
    for side in order if "train" in args.parts else ():
        model = copy.deepcopy(model0)
        t0 = time.perf_counter()
        if side == "natkit":
            train(model, task, cfg, resolution=res, seed=args.seed)
        else:
            plain_train(model, xtr, ytr, cfg, seed=args.seed)
        row["train_s"][side].append(time.perf_counter() - t0)
    for side in order if "evaluate" in args.parts else ():
        t0 = time.perf_counter()
        if side == "natkit":
            evaluate(model0, task, "val", resolution=res, limit=n_eval, batch_size=batch)
        else:
            plain_evaluate(model0, xev, yev, batch)
        row["eval_s"][side].append(time.perf_counter() - t0)


def summarise(rows) -> None:
    for row in rows.values():
        for kind, n in (("train", row["n_train"]), ("eval", row["n_eval"])):
            t = row[f"{kind}_s"]
            if not t["natkit"]:
                continue
            ratios = [p / q for q, p in zip(t["natkit"], t["plain"])]  # natkit speed / plain speed
            row[f"{kind}_ratio_per_round"] = [round(r, 4) for r in ratios]
            row[f"{kind}_ratio"] = median(ratios)
            row[f"{kind}_images_per_s"] = {s: n / median(v) for s, v in t.items()}


def judge_part(kind: str, ratios: dict, *, ratios_per_round: dict, images_per_s: dict, rounds: int, threads: int,
               images: int, prov: dict, source: str, note: str = "") -> ClaimResult:
    """The registered verdict of one part (``train`` or ``evaluate``) from its per-case ratios (natkit / plain)."""
    worst = min(ratios, key=ratios.get) if ratios else None
    values = {"ratio_min": ratios[worst] if worst else None, "ratios": ratios, "ratios_per_round": ratios_per_round,
              "images_per_s": images_per_s}
    effect = (f"lowest natkit/plain ratio {ratios[worst]:.3f} ({worst}) over {len(ratios)} cases "
              f"(range {min(ratios.values()):.3f}-{max(ratios.values()):.3f}), median of {rounds} rounds each"
              if worst else "no case measured")
    return judge(CLAIM_IDS[kind], values, effect=effect, n=None, note=note, source=source,
                 setting=f"Fashion-MNIST, {images} images, {threads} torch thread(s), {rounds} interleaved rounds",
                 ours="natkit images/s", baseline="plain PyTorch images/s", provenance=prov,
                 compute={"method": {"images": images, "rounds": rounds, "threads": threads},
                          "baselines": {"plain PyTorch": {"images": images, "rounds": rounds, "threads": threads}}})


def write_claims(out: Path, rows, meta, parts, t_start: float, source_name: str) -> list[ClaimResult]:
    """Judge this run's parts and merge them into results/perf/claims.json (parts not run keep their verdict)."""
    prov = {**provenance(t_start), "load_avg_start": meta["load_avg_start"]}
    prov["source_provenance"] = dict(prov)
    results = []
    for kind in CLAIM_IDS:
        if kind not in parts:
            continue
        key = "train" if kind == "train" else "eval"
        results.append(judge_part(
            kind, {k: round(r[f"{key}_ratio"], 4) for k, r in rows.items()},
            ratios_per_round={k: r[f"{key}_ratio_per_round"] for k, r in rows.items()},
            images_per_s={k: {s: round(v, 1) for s, v in r[f"{key}_images_per_s"].items()} for k, r in rows.items()},
            rounds=meta["setting"]["rounds"], threads=meta["setting"]["threads"],
            images=meta["setting"]["n_train"] if kind == "train" else meta["setting"]["n_eval"], prov=prov,
            source=f"results/perf/{source_name}.json"))
    write_claims_file(out / "claims.json", results)
    return results


def rejudge(sources: dict[str, str], out: Path) -> list[ClaimResult]:
    """Judge parts again on stored runs (``{"train": "results/perf/....json", ...}``, paths from the repo root):
    nothing is timed; provenance is the stored run's stamp."""
    from benchmarks.verdicts import run_provenance

    results = []
    for kind, rel in sources.items():
        if kind not in CLAIM_IDS:
            raise SystemExit(f"--rejudge: unknown part {kind!r} (train, evaluate)")
        data = json.loads((ROOT / rel).read_text())
        rows, st = data["rows"], data["stamp"]
        key = "train" if kind == "train" else "eval"
        rows = {k: r for k, r in rows.items() if f"{key}_ratio" in r}
        prov = run_provenance({**st, "load_avg_start": data.get("load_avg_start")}, rel)
        results.append(judge_part(
            kind, {k: round(r[f"{key}_ratio"], 4) for k, r in rows.items()},
            ratios_per_round={k: r[f"{key}_ratio_per_round"] for k, r in rows.items()},
            images_per_s={k: {s: round(v, 1) for s, v in r[f"{key}_images_per_s"].items()} for k, r in rows.items()},
            rounds=data["setting"]["rounds"], threads=data["setting"]["threads"],
            images=data["setting"]["n_train"] if kind == "train" else data["setting"]["n_eval"], prov=prov,
            source=rel))
    write_claims_file(out / "claims.json", results)
    return results


def write_md(path: Path, rows, meta):
    lines = ["# natkit's loops against plain PyTorch", "",
             f"Fashion-MNIST, one process, {meta['setting']['threads']} torch threads, {meta['setting']['rounds']} "
             "interleaved rounds (order alternates); ratio = natkit images/s / plain images/s, median of the "
             "per-round ratios. Load average during the run: "
             f"{', '.join(f'{x:.1f}' for x in meta['load_avg_start'])} (start), "
             f"{', '.join(f'{x:.1f}' for x in meta['stamp']['load_avg'])} (end), on {meta['stamp']['cpu']['count']} cores.",
             "", "| network | batch | train natkit img/s | train plain img/s | train ratio | eval natkit img/s | "
             "eval plain img/s | eval ratio |", "|---|---|---|---|---|---|---|---|"]
    def cells(r, key):
        if f"{key}_ratio" not in r:
            return "- | - | -"
        ips = r[f"{key}_images_per_s"]
        return f"{ips['natkit']:.0f} | {ips['plain']:.0f} | {r[f'{key}_ratio']:.3f}"

    for r in rows.values():
        lines.append(f"| {r['network']} | {r['batch']} | {cells(r, 'train')} | {cells(r, 'eval')} |")
    lines += ["", f"Command: `{meta['stamp']['command']}`, commit {meta['stamp']['commit'][:10]}"
              f"{' (dirty)' if meta['stamp']['dirty'] else ''}."]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "perf"))
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=3000, help="training images per epoch (Fashion-MNIST)")
    ap.add_argument("--n-eval", type=int, default=3000, help="validation images per evaluation")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="train,evaluate", help="train, evaluate or both (claims of a part not "
                    "run keep their earlier verdict in claims.json)")
    ap.add_argument("--rejudge", metavar="PART=FILE,...", help="time nothing: judge the parts again on stored runs, "
                    "e.g. evaluate=results/perf/throughput-evaluate.json")
    args = ap.parse_args(argv)
    import os

    if args.rejudge:
        claims = rejudge(dict(x.split("=", 1) for x in args.rejudge.split(",")), Path(args.out))
        for c in claims:
            print(c.id, {True: "holds", False: "FAILS"}.get(c.holds, "no verdict"), c.values["ratios"])
        return claims

    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    t_start, load0 = time.time(), list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    batches = [int(b) for b in args.batches.split(",")]
    task = load_data(args.n_train, args.n_eval, args.seed)
    data = {"models": {}}
    for name in networks:
        model, res = build_network(name, task.num_classes, task.in_channels, args.seed)
        data["models"][name] = (model, res)
        data[(name, "train")] = prepared(task, "train", None, res)
        data[(name, "eval")] = prepared(task, "val", args.n_eval, res)
    print(f"train {len(task.train)} images, eval {args.n_eval}; threads {torch.get_num_threads()}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    warm: dict = {}  # one untimed round on a sliver of the data: first-call allocations and kernels
    for name in networks:
        for b in batches:
            measure_pair(name, b, task, data, args, 0, warm, warm=True)
    rows: dict = {}
    for rnd in range(args.rounds):
        for name in networks:
            for b in batches:
                measure_pair(name, b, task, data, args, rnd, rows)
        summarise(rows)
        print(f"round {rnd}: " + ", ".join(
            f"{k}" + "".join(f" {kind} {r[f'{key}_ratio_per_round'][-1]:.3f}" for kind, key in
                             (("train", "train"), ("eval", "eval")) if f"{key}_ratio_per_round" in r)
            for k, r in rows.items()) + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    meta = {"setting": {"task": "fashion-mnist", "n_train": len(task.train), "n_eval": args.n_eval,
                        "networks": networks, "batches": batches, "rounds": args.rounds,
                        "parts": sorted(args.parts),
                        "threads": torch.get_num_threads(), "optimizer": "SGD lr 0.05, momentum 0.9 (Nesterov), "
                        "weight decay 5e-4, cosine over the epoch", "nat_subnet_genome": NAT_GENOME},
            "load_avg_start": load0, "stamp": stamp(t_start)}
    name = "throughput" if args.parts == {"train", "evaluate"} else f"throughput-{'-'.join(sorted(args.parts))}"
    write_json(out / f"{name}.json", {**meta, "rows": rows})
    write_md(out / f"{name}.md", rows, meta)
    claims = write_claims(out, rows, meta, args.parts, t_start, name)
    for c in claims:
        print(c.id, {True: "holds", False: "FAILS"}.get(c.holds, "no verdict"), c.values["ratios"])
    return claims


if __name__ == "__main__":
    main()
