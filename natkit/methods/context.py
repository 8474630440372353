"""Kept for scripts written before ``natkit.run_search``: ``RunContext(method=..., task=..., archive=...,
run_id=..., out_dir=..., options={...}, generations=..., pop_size=..., quick=...)`` returns the core's
``natkit.core.context.RunContext`` with the options parsed by the method's declared ``Options``
(``generations``/``pop_size`` are options). New code calls ``natkit.run_search`` or
``natkit.api.make_context``."""

from __future__ import annotations


def RunContext(*, method: str, options=None, generations: int | None = None, pop_size: int | None = None,  # noqa: N802
               **kw):
    from natkit.api import make_context
    from natkit.core.options import Options

    if not isinstance(options, Options):
        options = dict(options or {})
        if generations is not None:
            options.setdefault("generations", generations)
        if pop_size is not None:
            options.setdefault("pop_size", pop_size)
    return make_context(method, options=options, **kw)
