"""Surrogate ablation: NAT against the same loop without its surrogate (fashion-mnist -> digits).

Three arms share everything but how an iteration picks its k new subnets: the same supernet
(pretrained on a Fashion-MNIST subset, cached) after the same warm-up adaptation to digits, the same
initial genomes (2 extremes + random), the same supernet adaptation after every iteration
(``adapt_epochs`` on the arm's own best genomes) and the same re-evaluation of the whole archive after
it, so every arm gets the same training epochs and the same number of real evaluations:

- ``surrogate`` (NAT): NSGA-II on the surrogate's predicted error + exact MACs, k spread picks;
- ``nsga2``: one NSGA-II mating step (pymoo ask/tell) on the archive's *real* objectives, no surrogate;
- ``random``: k uniformly random genomes.

HV of (val error, MACs) normalised by (1, MACs of the largest subnet), reference 1.1, after the last
iteration (before any test data is touched; the split is validation). Resumable per seed: each seed's
arms are stored in results/nat/search_seeds/seed<N>.json as soon as they finish and skipped on the
next run. The registered rules are nat.search.vs_nsga2 and nat.search.vs_random in benchmarks/claims.toml.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks.nat.common import RESULTS, copy_net, make_ctx, target_supernet, write_result
from natkit.data import load_task
from natkit.methods.nat.method import NATLoop, load_nat_space
from natkit.methods.nat.supernet import InPlaceEvaluator
from natkit.report import stats
from natkit.report.provenance import provenance

BENCH = dict(initial=6, iterations=3, k=4, adapt_epochs=0.5, adapt_samples=1, search_generations=20,
             search_pop=30, surrogate="adaptive", reeval="all", n_calib=128)
ARMS = ("surrogate", "nsga2", "random")
LABELS = {"surrogate": "NAT (surrogate)", "nsga2": "NSGA-II proposals, no surrogate", "random": "random proposals"}
SEEDS_DIR = RESULTS / "search_seeds"


def run_arm(arm, task, net0, space, nat, X0, seed):
    t0 = time.time()
    ctx = make_ctx(task, seed)
    ev = InPlaceEvaluator(copy_net(net0), space, task, n_calib=int(nat["n_calib"]), seed=seed)
    loop = NATLoop(ctx, space, ev.net, ev, {**nat, "proposals": arm}, ctx.budget)
    loop.run(initial=X0)
    return {"hv": [e["hv"] for e in loop.log], "n_new": [e["n_new"] for e in loop.log],
            "n_real": [e["n_real"] for e in loop.log], "real_evaluations": loop.n_real,
            "distinct_subnets": loop.n_new, "adapt_epochs": float(nat["adapt_epochs"]) * int(nat["iterations"]),
            "seconds": time.time() - t0,
            "surrogate": [e.get("surrogate") for e in loop.log[1:]],
            "surrogate_kendall": [e.get("surrogate_kendall") for e in loop.log[1:]]}


def run_seed(seed, warmup, log=print) -> dict:
    path = SEEDS_DIR / f"seed{seed}.json"
    done = json.loads(path.read_text()) if path.is_file() else {"seed": seed, "arms": {}}
    if done.get("settings", BENCH) != BENCH or done.get("warmup_epochs", warmup) != warmup:
        raise SystemExit(f"{path} was made with other settings; move it away to rerun seed {seed}")
    todo = [a for a in ARMS if a not in done["arms"]]
    if not todo:
        log(f"seed {seed}: stored, skipped")
        return done
    t0 = time.time()
    task = load_task("digits", seed=seed)
    net0, space, nat = target_supernet(task, seed, warmup_epochs=warmup, log=log)
    nat = {**nat, **BENCH, "warmup_epochs": 0}
    rng = np.random.default_rng(seed)
    X0 = np.unique(np.vstack([space.extremes(), space.sample(nat["initial"] - 2, rng)]), axis=0)
    for arm in todo:
        done["arms"][arm] = run_arm(arm, task, net0, space, nat, X0, seed)
        log(f"seed {seed} {arm}: HV {[round(h, 4) for h in done['arms'][arm]['hv']]}, "
            f"{done['arms'][arm]['real_evaluations']} real evaluations, {done['arms'][arm]['seconds']:.0f} s")
        done.update(settings=BENCH, warmup_epochs=warmup, initial=X0.tolist())
        done["provenance"] = provenance(t0)
        SEEDS_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=2, default=float))
        os.replace(tmp, path)
    return done


def report(started=None) -> None:
    per_seed = {int(p.stem[4:]): json.loads(p.read_text()) for p in sorted(SEEDS_DIR.glob("seed*.json"))}
    per_seed = {s: d for s, d in sorted(per_seed.items()) if all(a in d["arms"] for a in ARMS)}
    if not per_seed:
        print("no complete seed stored yet")
        return
    seeds = list(per_seed)
    final = {a: [per_seed[s]["arms"][a]["hv"][-1] for s in seeds] for a in ARMS}
    summary = {a: stats.summarize(final[a]).as_dict() for a in ARMS}
    diffs = {b: stats.paired(final["surrogate"], final[b]).as_dict() for b in ARMS[1:]}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for a in ARMS:
        curves = np.array([per_seed[s]["arms"][a]["hv"] for s in seeds])
        n = per_seed[seeds[0]]["arms"][a]["n_new"]
        ax.errorbar(n, curves.mean(0), yerr=stats.sd_axis0(curves), marker="o", capsize=3, label=LABELS[a])
    ax.set(xlabel="distinct subnets evaluated for real", ylabel="hypervolume (val error, MACs)",
           title=f"fashion-mnist -> digits, same adaptation, n={len(seeds)} seeds (± sd)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "search.png", dpi=120)
    fmt = lambda a: stats.Summary(**summary[a]).fmt(digits=4)  # noqa: E731
    md = ["# NAT surrogate ablation (fashion-mnist -> digits)", "",
          f"HV after the last iteration; mean ± sd (ddof=1) over n={len(seeds)} seeds {seeds}; every arm: same "
          "warm-up, same adaptation schedule, whole archive re-evaluated after each adaptation.", "",
          "| arm | HV | real evaluations | distinct subnets | seconds per seed |", "|---|---|---|---|---|"]
    for a in ARMS:
        r = [per_seed[s]["arms"][a] for s in seeds]
        md.append(f"| {LABELS[a]} | {fmt(a)} | {np.mean([x['real_evaluations'] for x in r]):.0f} | "
                  f"{np.mean([x['distinct_subnets'] for x in r]):.0f} | {np.mean([x['seconds'] for x in r]):.0f} |")
    md += ["", "Paired HV difference, NAT minus arm (95% t interval):", ""]
    md += [f"- {LABELS[b]}: {stats.Paired(**diffs[b]).fmt(digits=4, unit='')}" for b in ARMS[1:]]
    write_result("search", {"summary": summary, "paired_nat_minus": diffs, "seeds": seeds, "settings": BENCH,
                            "per_seed": {str(s): per_seed[s] for s in seeds}}, "\n".join(md) + "\n", started)
    print("\n".join(md))


def main(argv=None):
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--report-only", action="store_true", help="aggregate the stored seeds, run nothing")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    if not args.report_only:
        warmup = float(load_nat_space("nat_small")[2]["warmup_epochs"])
        for s in args.seeds:
            run_seed(s, warmup)
    report(t0)


if __name__ == "__main__":
    main()
