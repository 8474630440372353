"""Method registry: name -> module exposing ``run(ctx)``. Modules are imported only when used."""

from __future__ import annotations

import importlib

from natkit.errors import ConfigError

METHODS = {
    "nat": ("natkit.methods.nat", "Neural Architecture Transfer: supernet adapted online + surrogate search"),
    "tascnet": ("natkit.methods.tascnet", "TASCNet: search the deeper layers, then prune redundant filters"),
    "progressive": ("natkit.methods.progressive", "layer-by-layer kernel elimination, progressive retraining"),
    "ke": ("natkit.methods.ke", "Knowledge Evolution: fit/reset generations and the slim network"),
    "lda": ("natkit.methods.lda", "task-dependent Deep LDA pruning"),
    "width": ("natkit.methods.width", "reference: NSGA-II over VGG per-layer widths, trained from scratch"),
    "random": ("natkit.methods.random_search", "reference: random sampling of the width space, same budget"),
    "nsga": ("natkit.tabular.nsga", "reference: plain NSGA-II/III over a table task's genes (table tasks only)"),
}


def get_method(name: str):
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return importlib.import_module(METHODS[name][0])
