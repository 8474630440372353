"""Table tasks (``--task table:...``): search engines that query a published table instead of training.

``natkit search nat|nsga|random --task table:...`` run NAT's surrogate-assisted loop, plain NSGA-II/III
and random sampling; methods that need trained weights (tascnet, progressive, ke, lda, width) refuse a
table task. The budget is ``--option evaluations=N`` (default 100 table queries).
"""

from __future__ import annotations

from natkit.errors import ConfigError

DEFAULT_EVALUATIONS = 100
ENGINES = ("nat", "nsga", "random")


def table_runner(method: str):
    """``run(ctx)`` of ``method`` on a table task, or a ConfigError saying why it cannot run there."""
    if method not in ENGINES:
        raise ConfigError(f"method {method!r} needs a network with trained weights; a table task has none "
                          f"(on table tasks use {', '.join(ENGINES)})")
    return lambda ctx: run(ctx, method)


def run(ctx, engine: str) -> dict:
    """Run ``engine`` on ``ctx.task`` (a TableTask); returns (and stores in ``ctx.stats``) the summary
    and writes ``OUT/table_log.json`` (HV ratio and IGD per generation)."""
    table_run, extra = search(ctx, engine)
    summary = table_run.summary()
    ctx.stats.update(summary)
    ctx.stats["table"] = ctx.task.table.describe()
    ctx.write_json("table_log.json", {"engine": engine, "objectives": ctx.objectives, "summary": summary,
                                      "generations": table_run.log, **extra})
    return summary


def search(ctx, engine: str):
    """The search itself: the finished ``TableRun`` (queries in order, per-generation log, engine time)."""
    from natkit.tabular.engines import NATTable, run_nsga, run_random
    from natkit.tabular.problem import TableRun

    options = dict(ctx.options)
    evaluations = options.pop("evaluations", DEFAULT_EVALUATIONS)
    if isinstance(evaluations, bool) or not isinstance(evaluations, int):
        raise ConfigError(f"option evaluations must be an integer, got {evaluations!r}")
    if engine != "nat" and options:
        raise ConfigError(f"unknown {engine} option {sorted(options)[0]!r} on a table task; known: evaluations")
    table_run = TableRun(ctx, evaluations)
    ctx.log(f"{engine} on table {ctx.task.table.name}: {len(ctx.task.table)} architectures, "
            f"{evaluations} evaluations, exact front {len(table_run.scorer.front_rows)} on {','.join(ctx.objectives)}")
    extra = {}
    if engine == "random":
        run_random(table_run, ctx.pop_size, ctx.seed)
    elif engine == "nsga":
        run_nsga(table_run, ctx.pop_size, ctx.seed)
    else:
        nat = NATTable(table_run, ctx.seed, options)
        extra["iterations"] = nat()
    return table_run, extra
