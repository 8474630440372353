"""Tabular benchmark: five search engines against NAS-Bench-Macro's exact Pareto fronts.

    python -m benchmarks.tabular.run [--jobs 2] [--seeds 20] [--budgets 25,50,100,200,400]

Every (objective pair, engine, seed) runs once to the largest budget and is stored in
``results/tabular/runs/`` as it finishes (a rerun skips finished ones: resumable per seed); budget B
scores a run's first B table calls (no engine reads the budget except to stop, so that is what a run
with budget B does). Then ``results.json``, ``results.md``, ``hv_igd.png`` and ``claims.json``
(registered claims from ``benchmarks/claims.toml``, decided by their rules) are written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from benchmarks.tabular.claims import SOURCE, decide_claims
from benchmarks.verdicts import run_provenance
from natkit.report.claims import write_claims
from benchmarks.tabular.engines import ENGINES, run_engine

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "tabular"
TABLE = "table:nas-bench-macro"
PAIRS = ("error,params", "error,flops")
N_SEEDS = [20]  # set by main: cells with fewer seeds say so


def _run_file(out: Path, pair: str, engine: str, seed: int) -> Path:
    return out / "runs" / pair.replace(",", "-") / f"{engine}-seed{seed:02d}.json"


def _one(args) -> tuple[str, float]:
    out, pair, engine, seed, budget = args
    path = _run_file(out, pair, engine, seed)
    t0 = time.perf_counter()
    res = run_engine(engine, TABLE, pair.split(","), seed, budget)
    res.update(engine=engine, objectives=pair, seed=seed, budget=budget, wall_s=time.perf_counter() - t0,
               loadavg=os.getloadavg(), commit=_commit())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res))
    tmp.replace(path)  # a killed benchmark never leaves a half run behind
    return str(path), res["wall_s"]


def _commit() -> str:
    """The code's commit, "-dirty" when tracked sources differ from it (results/ excluded, as in every
    provenance: other benchmarks writing results in the same tree do not make this run's code dirty)."""
    from natkit.report.provenance import code_state

    state = code_state(ROOT)
    return state["commit"] + ("-dirty" if state["dirty"] else "")


def _warm_up() -> None:
    """Imports in each worker before its first run, so no run's engine time includes them."""
    import optuna  # noqa: F401
    from pymoo.algorithms.moo.nsga2 import NSGA2  # noqa: F401
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding  # noqa: F401
    from sklearn.ensemble import ExtraTreesRegressor  # noqa: F401
    from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: F401
    from sklearn.neural_network import MLPRegressor  # noqa: F401

    import natkit.tabular.engines  # noqa: F401


def score(out: Path, seeds, budgets, engines) -> dict:
    from natkit.data.table import load_table
    from natkit.tabular.indicators import TableScorer

    table = load_table(TABLE[len("table:"):])
    result = {}
    for pair in PAIRS:
        scorer = TableScorer(table, pair.split(","))
        per = {}
        for engine in engines:
            rows_b = {b: {"hv_ratio": [], "igd": [], "engine_s_per_eval": [], "distinct": []} for b in budgets}
            for seed in seeds:
                path = _run_file(out, pair, engine, seed)
                if not path.is_file():
                    continue
                run = json.loads(path.read_text())
                trace = run["engine_trace"]
                for b in budgets:
                    if run["budget"] < b:  # a shorter run says nothing about this budget
                        continue
                    rows = run["rows"][:b]
                    s = scorer.score(rows)
                    t = next(t for n, t in trace if n >= min(b, trace[-1][0]))
                    rows_b[b]["hv_ratio"].append(s["hv_ratio"])
                    rows_b[b]["igd"].append(s["igd"])
                    rows_b[b]["engine_s_per_eval"].append(t / b)
                    rows_b[b]["distinct"].append(len(set(rows)))
            per[engine] = {str(b): {**{k: _stats(v) for k, v in d.items()}, "raw_hv_ratio": d["hv_ratio"],
                                    "raw_igd": d["igd"]} for b, d in rows_b.items()}
        result[pair] = {"exact_front_size": int(len(scorer.front_rows)), "bounds": scorer.bounds, "engines": per}
    return result


def _stats(v) -> dict:
    v = np.asarray(v, float)
    if not len(v):
        return {"median": float("nan"), "q1": float("nan"), "q3": float("nan"), "n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(len(v))}


def markdown(result, stamp, claims, budgets, engines) -> str:
    lines = ["# Tabular benchmark: NAS-Bench-Macro (CIFAR-10), five search engines", "",
             f"`{stamp['command']}` — commit {stamp['commit']}{' (dirty)' if stamp['dirty'] else ''}, "
             f"{stamp['cpu']} ({stamp['threads']} threads), wall {stamp['wall_s']:.0f} s, load {stamp['loadavg']}", "",
             "HV ratio: pymoo hypervolume of a run's front (run-mean objectives of the architectures it queried) "
             "over the exact front's; objectives normalised by the table's min/max, reference point 1.1. IGD: pymoo, "
             "same normalisation, to the exact front. Median [IQR] over "
             f"{stamp['seeds']} seeds. Budget = table calls (natkit engines: distinct architectures; Optuna: trials, "
             "whose repeats are shown as 'distinct').", ""]
    for pair, r in result.items():
        lines += [f"## {pair} (exact front: {r['exact_front_size']} architectures)", "",
                  "| engine | " + " | ".join(f"HV ratio @{b}" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for e in engines:
            cells = [_cell(r["engines"][e][str(b)]["hv_ratio"], 4) for b in budgets]
            lines.append(f"| {e} | " + " | ".join(cells) + " |")
        lines += ["", "| engine | " + " | ".join(f"IGD @{b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for e in engines:
            cells = [_cell(r["engines"][e][str(b)]["igd"], 4) for b in budgets]
            lines.append(f"| {e} | " + " | ".join(cells) + " |")
        lines += ["", "| engine | " + " | ".join(f"ms/eval @{b}" for b in budgets) + " | distinct @max |",
                  "|---|" + "---|" * (len(budgets) + 1)]
        for e in engines:
            cells = [f"{1000 * r['engines'][e][str(b)]['engine_s_per_eval']['median']:.2f}"
                     if r["engines"][e][str(b)]["engine_s_per_eval"]["n"] else "-" for b in budgets]
            d = r["engines"][e][str(budgets[-1])]["distinct"]
            lines.append(f"| {e} | " + " | ".join(cells) + (f" | {d['median']:.0f} |" if d["n"] else " | - |"))
        lines.append("")
    lines += ["ms/eval: median wall time of the engine's own machinery per table call up to that budget "
              "(nat: surrogate fits, adaptive switch and inner search; NSGA-II: pymoo ask/tell; Optuna: ask, "
              "suggest and tell), with table lookups, archive writes and scoring excluded. Measured on a shared "
              "2-core host under other load: compare ratios, not absolute times.", "", "## Registered claims", ""]
    for c in claims:
        verdict = "UNDECIDED" if c.holds is None else "HOLDS" if c.holds else "FAILS"
        lines.append(f"- **{c.tag}** (`{c.rule}`): {verdict} — {c.effect}")
    return "\n".join(lines) + "\n"


def _cell(s, nd) -> str:
    if not s["n"]:
        return "-"
    return f"{s['median']:.{nd}f} [{s['q1']:.{nd}f}, {s['q3']:.{nd}f}]" + ("" if s["n"] == N_SEEDS[0] else f" (n={s['n']})")


def plot(result, path: Path, budgets, engines) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(result), figsize=(6 * len(result), 8), dpi=110, squeeze=False)
    for j, (pair, r) in enumerate(result.items()):
        for i, metric in enumerate(("hv_ratio", "igd")):
            ax = axes[i, j]
            for k, e in enumerate(engines):
                bs = [b for b in budgets if r["engines"][e][str(b)][metric]["n"]]
                s = [r["engines"][e][str(b)][metric] for b in bs]
                ax.plot(bs, [x["median"] for x in s], marker="o", color=f"C{k}", label=e)
                ax.fill_between(bs, [x["q1"] for x in s], [x["q3"] for x in s], color=f"C{k}", alpha=0.2)
            ax.set_xscale("log")
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.set_xlabel("evaluations (table calls)")
            ax.set_ylabel("HV ratio" if metric == "hv_ratio" else "IGD")
            if metric == "igd":
                ax.set_yscale("log")
            ax.set_title(f"{pair}: median {metric.replace('_', ' ')} (IQR band)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def stamp(argv, wall_s, seeds) -> dict:
    from natkit.core.archive import package_versions

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = package_versions()
    try:
        import optuna

        versions["optuna"] = optuna.__version__
    except ImportError:
        pass
    from natkit.report.provenance import code_state

    return {**code_state(ROOT),
            "command": "python -m benchmarks.tabular.run " + " ".join(argv), "versions": versions, "cpu": cpu,
            "threads": os.cpu_count(), "wall_s": wall_s, "loadavg": [round(x, 2) for x in os.getloadavg()],
            "seeds": len(seeds)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.tabular.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budgets", default="25,50,100,200,400")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--pairs", default=",".join(p.replace(",", "-") for p in PAIRS),
                   help="objective pairs whose runs to do (all are scored), e.g. error-params")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--score-only", action="store_true", help="only aggregate the stored runs")
    p.add_argument("--run-budget", type=int, default=None,
                   help="run new runs only to this budget (default: the largest); larger budgets are then "
                        "scored on the seeds that ran that far")
    a = p.parse_args(argv)
    out = Path(a.out)
    seeds = list(range(a.seeds))
    N_SEEDS[0] = a.seeds
    budgets = sorted(int(b) for b in a.budgets.split(","))
    engines = [e for e in a.engines.split(",") if e]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        p.error(f"unknown engine {bad[0]!r}; choose from {', '.join(ENGINES)}")
    t0 = time.time()
    pairs = [q.replace("-", ",") for q in a.pairs.split(",")]
    todo = [(out, pair, e, s, a.run_budget or budgets[-1]) for e in engines for pair in pairs for s in seeds
            if not _run_file(out, pair, e, s).is_file()]
    if todo and not a.score_only:
        print(f"{len(todo)} runs to do ({a.jobs} processes)", flush=True)
        with ProcessPoolExecutor(max_workers=a.jobs, initializer=_warm_up) as pool:
            futures = [pool.submit(_one, t) for t in todo]
            for i, f in enumerate(as_completed(futures), 1):
                path, wall = f.result()
                print(f"[{i}/{len(todo)}] {Path(path).relative_to(out)} {wall:.1f} s", flush=True)
    result = score(out, seeds, budgets, engines)
    st = stamp(argv, time.time() - t0, seeds)
    claims = decide_claims(result, run_provenance(st, SOURCE))
    (out / "results.json").write_text(json.dumps({"stamp": st, "table": TABLE, "budgets": budgets,
                                                  "engines": engines, "results": result}, indent=1))
    (out / "results.md").write_text(markdown(result, st, claims, budgets, engines))
    plot(result, out / "hv_igd.png", budgets, engines)
    path = out / "claims.json"
    if path.is_file():  # verdicts of this run only: a claim this run cannot decide says so (holds None)
        path.unlink()
    write_claims(path, claims)
    for c in claims:
        print(f"{c.tag}: {'undecided' if c.holds is None else 'holds' if c.holds else 'FAILS'} ({c.effect})")
    print(out / "results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
