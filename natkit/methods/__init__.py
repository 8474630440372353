"""Method registry: name -> the package module exposing ``run(ctx)`` and ``Options``. Modules are
imported only when used. A new method registers here and gets the contract test for free."""

from __future__ import annotations

from natkit.core.registry import Registry

methods = Registry("method")
for _name, _module, _doc in (
    ("nat", "natkit.methods.nat.method", "Neural Architecture Transfer: supernet adapted online + surrogate search"),
    ("tascnet", "natkit.methods.tascnet.method", "TASCNet: search the deeper layers, then prune redundant filters"),
    ("progressive", "natkit.methods.progressive.method", "layer-by-layer kernel elimination, progressive retraining"),
    ("ke", "natkit.methods.ke.method", "Knowledge Evolution: fit/reset generations and the slim network"),
    ("lda", "natkit.methods.lda.method", "task-dependent Deep LDA pruning"),
    ("width", "natkit.methods.width.method", "reference: NSGA-II over VGG per-layer widths, trained from scratch"),
    ("random", "natkit.methods.random.method", "reference: random sampling of the width space, same budget"),
    ("nsga", "natkit.methods.nsga.method", "reference: plain NSGA-II/III over a table task's genes (table tasks only)"),
):
    methods.add_lazy(_name, _module, doc=_doc)

# name -> (module, one-line description), as before the registry
METHODS = {n: (methods.info(n)["module"], methods.info(n)["doc"]) for n in methods.names()}


def get_method(name: str):
    return methods.get(name)


def options_class(name: str):
    return get_method(name).Options
