"""Network families with per-layer widths, behind one registry."""

import importlib

from natkit.nets.registry import build_from_arch, create_model, list_models, register_model

for _mod in ("vgg", "resnet", "densenet", "torchvision_models"):
    try:
        importlib.import_module(f"natkit.nets.{_mod}")
    except ModuleNotFoundError as _exc:  # a family still being written must not break the others
        if _exc.name != f"natkit.nets.{_mod}":
            raise

from natkit.nets.io import load_model, save_model  # noqa: E402

__all__ = ["build_from_arch", "create_model", "list_models", "register_model", "load_model", "save_model"]
