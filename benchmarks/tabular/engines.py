"""One benchmark run per (engine, objectives, seed): the distinct table rows an engine queried, in
order, and its own machinery's wall time after each query.

natkit's engines (nat, nsga2, random) run through the library exactly as ``natkit search`` runs them
(a context from ``natkit.api.make_context``, ArchiveProblem, a SQLite archive in a temporary folder);
Optuna's samplers through Optuna's own ask/tell API on the same table with the same query protocol (one
training run per architecture, chosen by the seed).

Budget accounting: every engine makes exactly ``budget`` calls to the table. natkit's engines never
repeat an architecture (the archive answers repeats), so their calls are ``budget`` distinct
architectures; Optuna's samplers have no duplicate check of their own, so a run is ``budget`` trials
(``study.optimize(n_trials=budget)``), each a table call, and repeats are recorded (``distinct``).
Answering Optuna's repeats from a cache instead was measured first: TPE needed 206 trials for 100
distinct architectures and 900 for 200 (70 s of sampler time for one run), which put a 400-budget
run out of reach here.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

NATKIT_ENGINES = {"nat": "nat", "nsga2": "nsga", "random": "random"}
OPTUNA_ENGINES = ("optuna_nsga2", "optuna_tpe")
ENGINES = tuple(NATKIT_ENGINES) + OPTUNA_ENGINES
POP_SIZE = 20  # natkit's NSGA-II population and random's batch (the CLI default --pop-size)


def run_engine(engine: str, table_spec: str, objectives: list[str], seed: int, budget: int) -> dict:
    if engine in NATKIT_ENGINES:
        return _natkit(NATKIT_ENGINES[engine], table_spec, objectives, seed, budget)
    if engine in OPTUNA_ENGINES:
        return _optuna(engine, table_spec, objectives, seed, budget)
    raise ValueError(f"unknown engine {engine!r}")


def _natkit(engine, table_spec, objectives, seed, budget) -> dict:
    from natkit.api import make_context
    from natkit.core.archive import Archive
    from natkit.data.table import load_table_task
    from natkit.tabular import search

    task = load_table_task(table_spec)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        archive = Archive(Path(tmp) / "archive.sqlite")  # the CLI's archive path; tmpfs-speed on /tmp
        run_id = archive.start_run(engine, task.spec, {"objectives": ",".join(objectives), "budget": budget}, seed)
        ctx = make_context(engine, task=task, archive=archive, run_id=run_id, out_dir=Path(tmp), seed=seed,
                           objectives=list(objectives), options={"evaluations": budget, "pop_size": POP_SIZE},
                           verbose=False)
        table_run, _ = search(ctx, engine)
        rows = [task.table.row(enc) for enc, _, _ in table_run.seen.values()]
        archive.close()
    return {"rows": rows, "engine_trace": table_run.engine_trace, "real_queries": table_run.problem.n_real}


def _optuna(engine, table_spec, objectives, seed, budget) -> dict:
    import optuna

    from natkit.data.table import load_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = load_table(table_spec[len("table:"):])
    if engine == "optuna_nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)  # multi-objective TPE with several directions
    study = optuna.create_study(directions=["minimize"] * len(objectives), sampler=sampler)
    rows, trace = [], []
    engine_s = 0.0
    n_choices = [int(n) for n in table.n_choices]
    for trial_no in range(budget):
        t0 = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_categorical(f"g{i}", list(range(n))) for i, n in enumerate(n_choices)]
        engine_s += time.perf_counter() - t0
        q = table.query(x, seed)
        rows.append(table.row(x))
        t0 = time.perf_counter()
        study.tell(trial, [q[o] for o in objectives])
        engine_s += time.perf_counter() - t0
        trace.append((trial_no + 1, engine_s))
    return {"rows": rows, "engine_trace": trace, "real_queries": budget, "distinct": len(set(rows))}
