"""Model registry: small entry functions registered by name, one factory."""

from __future__ import annotations

import copy
from typing import Callable

import torch.nn as nn

from natkit.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, *, num_classes: int, in_channels: int = 3, **overrides) -> nn.Module:
    if name not in _MODELS:
        _import_method_families()
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, **overrides)
    model = _MODELS[name](**kwargs)
    model.natkit_arch = {"name": name, "kwargs": copy.deepcopy(kwargs)}
    return model


def build_from_arch(arch: dict) -> nn.Module:
    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError(f"architecture description needs a 'name': {arch!r}")
    kwargs = dict(arch.get("kwargs", {}))
    num_classes = kwargs.pop("num_classes", None)
    if num_classes is None:
        raise ConfigError(f"architecture {arch['name']!r} lacks num_classes")
    return create_model(arch["name"], num_classes=num_classes, **kwargs)


def _import_method_families() -> None:
    """Methods register their own candidate families (e.g. TASCNet's rebuilt heads) on import; a
    fresh process reloading an exported model needs them too."""
    import importlib

    from natkit.methods import METHODS

    for module, _ in METHODS.values():
        try:
            importlib.import_module(module)
        except ImportError:
            pass
