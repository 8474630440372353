"""Saving and loading models: architecture JSON + safetensors weights, never an unpickle.

Physically pruned models keep their family's architecture description; ``load_model`` first
resizes every conv, linear and batch-norm layer to the shapes stored in the weights file, then
loads the weights, so a pruned network reloads without pickling its module tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from natkit.errors import WeightsError


def load_state_dict_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or unsafe file: one clear line, no traceback
        raise WeightsError(f"cannot read weights file {path}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return state


def resize_to_state_dict(model: nn.Module, state: dict) -> nn.Module:
    """Replace conv/linear/BN modules whose stored shapes differ (pruned channels)."""
    for name, module in list(model.named_modules()):
        key = f"{name}.weight" if name else "weight"
        if isinstance(module, nn.Conv2d) and key in state and state[key].shape != module.weight.shape:
            out_c, in_per_group = state[key].shape[:2]
            groups = module.groups if module.groups == 1 else out_c
            new = nn.Conv2d(in_per_group * groups, out_c, module.kernel_size, module.stride,
                            module.padding, module.dilation, groups, module.bias is not None)
            model.set_submodule(name, new)
        elif isinstance(module, nn.Linear) and key in state and state[key].shape != module.weight.shape:
            out_f, in_f = state[key].shape
            model.set_submodule(name, nn.Linear(in_f, out_f, bias=module.bias is not None))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and f"{name}.running_mean" in state:
            n = state[f"{name}.running_mean"].shape[0]
            if n != module.num_features:
                model.set_submodule(name, type(module)(n, module.eps, module.momentum, module.affine))
    return model


def save_model(model: nn.Module, out_dir, *, arch: dict | None = None, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    arch = arch or getattr(model, "natkit_arch", None)
    extra = {"input": getattr(model, "natkit_input", None), **(extra or {})}
    if arch is None:
        raise WeightsError("model has no architecture description (natkit_arch); build it with create_model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "weights.safetensors"))
    (out / "arch.json").write_text(json.dumps({"arch": arch, **extra}, indent=2, default=str))
    return out


def load_model(model_dir) -> nn.Module:
    """Rebuild an exported model (``arch.json`` + ``weights.safetensors``) for inference or reuse."""
    from natkit.nets.registry import build_from_arch

    d = Path(model_dir)
    if not (d / "arch.json").is_file():
        raise WeightsError(f"no arch.json in {d}")
    try:
        meta = json.loads((d / "arch.json").read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"corrupt {d / 'arch.json'}: {exc}") from None
    model = build_from_arch(meta["arch"])
    state = load_state_dict_file(d / "weights.safetensors")
    resize_to_state_dict(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"weights in {d} do not fit architecture {meta['arch'].get('name')}: "
                           f"{str(exc).splitlines()[0]}") from None
    model.natkit_arch = meta["arch"]
    model.natkit_input = meta.get("input")
    return model
