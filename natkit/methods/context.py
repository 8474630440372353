"""Building a run's context from loose settings (what scripts did before ``natkit.run_search``).

``RunContext(method=..., task=..., archive=..., run_id=..., out_dir=..., options={...}, generations=...,
pop_size=..., quick=...)`` parses ``options`` with the method's declared ``Options`` (the one parser) and
returns the core's ``natkit.core.context.RunContext``. New code should call ``natkit.run_search``."""

from __future__ import annotations

from natkit.core.context import RunContext as _Context
from natkit.core.options import Options


def RunContext(*, method: str, options=None, quick: bool = False, generations: int | None = None,  # noqa: N802
               pop_size: int | None = None, **kw) -> _Context:
    from natkit.methods import options_class

    if not isinstance(options, Options):
        values = dict(options or {})
        if generations is not None:
            values.setdefault("generations", generations)
        if pop_size is not None:
            values.setdefault("pop_size", pop_size)
        from natkit.core.options import resolve_options

        options, _ = resolve_options(options_class(method), values, method=method, quick=quick)
    return _Context(method=method, options=options, **kw)
