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

from natkit.errors import ConfigError, WeightsError, scrub


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
        raise WeightsError(scrub(f"cannot read weights file {path}: {type(exc).__name__}: {exc or 'corrupt'}")) \
            from None
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
    """Rebuild an exported model (``arch.json`` + ``weights.safetensors``) for inference or reuse.

    Pruned layers are resized to the stored weights, but what ``arch.json`` pins is checked first and a
    mismatch refused naming the first layer that differs: the parameter names, kernel sizes, the input
    channels of the first layer and the classes of the decision layer.
    """
    from natkit.nets.registry import build_from_arch

    d = Path(model_dir)
    arch_file = d / "arch.json"
    if not arch_file.is_file():
        raise WeightsError(f"no arch.json in {d}")
    try:
        meta = json.loads(arch_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"corrupt {arch_file}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), dict):
        raise WeightsError(f"{arch_file} has no 'arch' object (expected {{\"arch\": {{\"name\": ..., "
                           f"\"kwargs\": {{...}}}}}})")
    arch = meta["arch"]
    if not isinstance(arch.get("kwargs", {}), dict):
        raise WeightsError(f"{arch_file}: arch.kwargs must be an object, got {arch.get('kwargs')!r}")
    try:
        model = build_from_arch(arch)
    except (ConfigError, TypeError, ValueError, KeyError, RuntimeError, MemoryError, OverflowError) as exc:
        raise WeightsError(f"{arch_file} does not describe a buildable model: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    state = load_state_dict_file(d / "weights.safetensors")
    check_state_shapes(model, state, f"weights in {d}", str(arch.get("name")))
    resize_to_state_dict(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"weights in {d} do not fit architecture {arch.get('name')}: "
                           f"{str(exc).splitlines()[0]}") from None
    model.natkit_arch = arch
    model.natkit_input = meta.get("input")
    return model


def check_state_shapes(model: nn.Module, state: dict, what: str, name: str) -> None:
    """Refuse ``state`` when it cannot be this architecture, naming the first layer that differs."""
    own = model.state_dict()
    for key in own:
        if key not in state:
            raise WeightsError(f"{what} do not fit architecture {name}: layer {key} is missing")
    for key in state:
        if key not in own:
            raise WeightsError(f"{what} do not fit architecture {name}: unexpected layer {key}")
    kwargs = (getattr(model, "natkit_arch", None) or {}).get("kwargs", {})
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    ch = kwargs.get("in_channels")
    if convs and ch is not None and own[f"{convs[0]}.weight"].shape[1] == ch:
        key = f"{convs[0]}.weight"
        if state[key].shape[1] != ch:
            raise WeightsError(f"{what} do not fit architecture {name}: layer {key} takes {state[key].shape[1]} "
                               f"input channels, the architecture says {ch}")
    k = kwargs.get("num_classes")
    heads = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == k]
    if heads and state[f"{heads[-1]}.weight"].shape[0] != k:
        key = f"{heads[-1]}.weight"
        raise WeightsError(f"{what} do not fit architecture {name}: layer {key} gives {state[key].shape[0]} "
                           f"outputs, the architecture says {k} classes")
