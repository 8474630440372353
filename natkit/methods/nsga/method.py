"""``nsga`` on a table task: the registry's entry point (``run``, ``Options``, ``TABLE_ONLY``).

On a table task the CLI runs it through ``natkit.tabular.table_runner``; on a trained task the
reference NSGA-II is ``width``, so this entry refuses anything but a table.
"""

from __future__ import annotations

from natkit.errors import ConfigError

from natkit.tabular import TableOptions as Options  # noqa: F401  (the registry's Options of nsga)

TABLE_ONLY = True


def run(ctx) -> None:
    from natkit.data.table import TableTask

    if not isinstance(ctx.task, TableTask):
        raise ConfigError("method nsga runs on table tasks only (--task table:...); on a trained task the "
                          "reference NSGA-II search is 'width'")
    from natkit.tabular import run as run_table

    run_table(ctx, "nsga")
