"""Table tasks (``--task table:...``): search engines that query a published table instead of training.

``natkit search nat|nsga|random --task table:...`` run NAT's surrogate-assisted loop, plain NSGA-II/III
and random sampling; methods that need trained weights (tascnet, progressive, ke, lda, width) refuse a
table task. The budget is ``--option evaluations=N`` (default 100 table queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from natkit.core.options import Options, option
from natkit.errors import ConfigError

DEFAULT_EVALUATIONS = 100
ENGINES = ("nat", "nsga", "random")
_WHY_NOT = {k: "a table task is a lookup: there is no network to train or prune"
            for k in ("space", "model", "weights", "generations")}


@dataclass
class TableOptions(Options):
    """Options of ``nsga`` and ``random`` on a table task."""

    WHY_NOT: ClassVar[dict] = _WHY_NOT

    evaluations: int = option(DEFAULT_EVALUATIONS, doc="table queries (distinct architectures) the search may make")
    pop_size: int = option(20, doc="population (nsga) or batch (random) size")

    def check(self) -> None:
        if self.evaluations < 1 or self.pop_size < 2:
            raise ConfigError(f"option evaluations must be >= 1 and pop_size >= 2, got {self.evaluations} and "
                              f"{self.pop_size}")


@dataclass
class NATTableOptions(TableOptions):
    """Options of ``nat`` on a table task: NAT's loop without its supernet (see ``engines.NATTable``)."""

    initial: int = option(10, doc="random architectures in the first archive (plus the space's two extremes)")
    k: int = option(5, doc="architectures queried per iteration (at least)")
    k_growth: float = option(0.05, doc="batch size as a share of the archive, when larger than k")
    surrogate: str = option("adaptive", doc="accuracy surrogate (adaptive: best cross-validated Kendall tau)")
    cost_surrogate: str = option("rbf", doc="surrogate family for the table's cost columns")
    reselect: float = option(1.5, doc="re-choose the adaptive surrogate when the archive grew by this factor")
    inner: str = option("auto", doc="inner search on the surrogates", choices=("auto", "nsga", "enumerate"))
    search_pop: int = option(40, doc="population of the inner NSGA")
    search_generations: int = option(30, doc="generations of the inner NSGA")


def table_options_class(method: str):
    return NATTableOptions if method == "nat" else TableOptions


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

    from natkit.tabular.engines import NAT_TABLE_DEFAULTS

    o = ctx.options
    evaluations, pop_size = o.evaluations, o.pop_size
    options = {k: getattr(o, k) for k in NAT_TABLE_DEFAULTS if hasattr(o, k)}
    table_run = TableRun(ctx, evaluations)
    ctx.log(f"{engine} on table {ctx.task.table.name}: {len(ctx.task.table)} architectures, "
            f"{evaluations} evaluations, exact front {len(table_run.scorer.front_rows)} on {','.join(ctx.objectives)}")
    extra = {}
    if engine == "random":
        run_random(table_run, pop_size, ctx.seed)
    elif engine == "nsga":
        run_nsga(table_run, pop_size, ctx.seed)
    else:
        nat = NATTable(table_run, ctx.seed, options)
        extra["iterations"] = nat()
    return table_run, extra
