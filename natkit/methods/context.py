"""Building a run's context: the method's options parsed by its declared ``Options`` (``method_options``)
and ``make_context`` for code that drives a method's parts without the CLI (whole runs go through
``natkit.run_search``)."""

from __future__ import annotations

from pathlib import Path

from natkit.errors import ConfigError


def method_options(method: str, values: dict | None = None, *, quick: bool = False, flags: dict | None = None,
                   cls=None):
    """The method's typed options from ``values`` (``--option``), ``flags`` (CLI flags that are options)
    and its space file; returns (options, budget table of the space file or None)."""
    from natkit.core.options import resolve_options
    from natkit.methods import get_method

    cls = cls or get_method(method).Options
    values = dict(values or {})
    if any(k not in cls.known() for k in values):  # a misspelt option is named before any flag is questioned
        resolve_options(cls, values, method=method, quick=quick)
    for flag, value in (flags or {}).items():
        if value is None:
            continue
        if flag not in cls.known():
            why = getattr(cls, "WHY_NOT", {}).get(flag, "")
            raise ConfigError(f"{method} does not use --{flag.replace('_', '-')}" + (f": {why}" if why else "") +
                              f"; its options: {', '.join(cls.known())}")
        values[flag] = value
    return resolve_options(cls, values, method=method, quick=quick)


def make_context(method: str, *, task, out_dir, archive=None, run_id: int | None = None, options=None,
                 quick: bool = False, **kw):
    """A run's context without the CLI: ``options`` is a dict of option values (parsed by the method's
    declared ``Options``, the space file's [budget] becoming the budget unless one is given) or an
    ``Options`` object; ``archive`` an ``Archive`` or a path (default ``out_dir/archive.sqlite``); a run is
    started in it unless ``run_id`` is given. Tests and scripts that drive a method's parts use this;
    whole runs go through ``run_search``."""
    from natkit.core.archive import Archive
    from natkit.core.budget import Budget
    from natkit.core.context import RunContext
    from natkit.core.options import Options

    if isinstance(options, Options):
        opts, space_budget = options, None
    else:
        cls = None
        if str(getattr(task, "spec", "")).startswith("table:"):  # a lookup search: the table engines' options
            from natkit.tabular import table_options_class

            cls = table_options_class(method)
        opts, space_budget = method_options(method, options, quick=quick, cls=cls)
    if "budget" not in kw and space_budget:
        kw["budget"] = Budget(space_budget)
    if archive is None or isinstance(archive, (str, Path)):
        archive = Archive(Path(archive) if archive else Path(out_dir) / "archive.sqlite")
    if run_id is None:
        run_id = archive.start_run(method, task.spec, {"options": opts.to_dict()}, kw.get("seed", 0))
    return RunContext(method=method, task=task, archive=archive, run_id=run_id, out_dir=out_dir, options=opts,
                      **kw)
