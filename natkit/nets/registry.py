"""Model registry: small entry functions registered by name (``@register_model``), one factory.

Every model's ``natkit_arch`` records the module that defines its family (``module``), so reloading an
exported model in a fresh process imports exactly that module (as timm's ``_model_to_module`` does) and
this layer never imports the methods that register families of their own (e.g. TASCNet's rebuilt nets)."""

from __future__ import annotations

import copy
import importlib

import torch.nn as nn

from natkit.core.registry import Registry
from natkit.errors import ConfigError

models = Registry("model")


def register_model(name: str):
    def deco(fn):
        if name in models:
            raise ValueError(f"model {name!r} registered twice")
        models.add(name, fn)
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(models.names())


def create_model(name: str, *, num_classes: int, in_channels: int = 3, **overrides) -> nn.Module:
    if name not in models:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, **overrides)
    fn = models.get(name)
    model = fn(**kwargs)
    model.natkit_arch = {"name": name, "kwargs": copy.deepcopy(kwargs), "module": fn.__module__}
    return model


def build_from_arch(arch: dict) -> nn.Module:
    if not isinstance(arch, dict) or "name" not in arch:
        raise ConfigError(f"architecture description needs a 'name': {arch!r}")
    if arch["name"] not in models and arch.get("module"):
        try:
            importlib.import_module(arch["module"])  # the family's defining module registers it
        except ImportError as exc:
            raise ConfigError(f"model family {arch['name']!r} lives in {arch['module']}, which does not import: "
                              f"{exc}") from None
    kwargs = dict(arch.get("kwargs", {}))
    num_classes = kwargs.pop("num_classes", None)
    if num_classes is None:
        raise ConfigError(f"architecture {arch['name']!r} lacks num_classes")
    return create_model(arch["name"], num_classes=num_classes, **kwargs)
