"""One registry implementation for every plug-in kind (models, surrogates, relevance criteria, methods).

``Registry(kind)`` maps names to objects, with a decorator (``@reg.register("name")``), lazy entries
(``reg.add_lazy("name", "package.module:attr")``: the module is imported only when the entry is used,
so registering costs nothing), ``get``/``create`` and ``names``. An unknown name is a ``ConfigError``
that lists the known ones. (The shape follows timm's ``_registry.py``.)"""

from __future__ import annotations

import importlib

from natkit.errors import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict = {}  # name -> object, or ("lazy", "module:attr")
        self._info: dict = {}

    def register(self, name: str | None = None, **info):
        """Decorator: register the decorated object under ``name`` (default: its ``__name__``)."""

        def deco(obj):
            self.add(name or obj.__name__, obj, **info)
            return obj

        return deco

    def add(self, name: str, obj, **info) -> None:
        self._entries[name] = obj
        self._info[name] = {"module": getattr(obj, "__module__", None), **info}

    def add_lazy(self, name: str, target: str, **info) -> None:
        """``target`` is ``"module"`` or ``"module:attr"``; imported on first use."""
        self._entries[name] = ("lazy", target)
        self._info[name] = {"module": target.split(":")[0], **info}

    def __contains__(self, name) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def info(self, name: str) -> dict:
        self._check(name)
        return dict(self._info[name])

    def get(self, name: str):
        self._check(name)
        obj = self._entries[name]
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "lazy":
            module, _, attr = obj[1].partition(":")
            mod = importlib.import_module(module)
            obj = getattr(mod, attr) if attr else mod
            self._entries[name] = obj
        return obj

    def create(self, name: str, *args, **kw):
        return self.get(name)(*args, **kw)

    def _check(self, name) -> None:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}")
