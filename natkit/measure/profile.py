"""``natkit profile``: which layer units natkit's spaces use, and the standalone script that times them.

On the searching host, natkit samples networks of its spaces (VGG widths, NAT subnets, and the VGG/
ResNet/DenseNet families pruned at random ratios by Torch-Pruning, as the pruning methods leave them),
exports each to ONNX and collects their distinct units (``natkit/measure/units.py``). The units are
embedded in a copy of ``profile_script.py`` -- a file that needs only numpy and onnxruntime -- which is
run here (``natkit profile --out``) or copied to the device (``natkit profile --write-script``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from natkit.errors import ConfigError, NatkitError

SPACES = ("width", "nat_small", "pruned")
FAMILIES = ("vgg_small", "resnet_small", "densenet_small")


def sample_networks(space: str, n: int, *, seed: int = 0, channels: int = 1, classes: int = 10,
                    resolution: int = 28):
    """``n`` networks of one of natkit's spaces, with random weights: ``(model, resolution, channels)``."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if space == "width":
        from natkit.methods.width_space import load_width_space
        from natkit.nets import create_model

        sp, _, _ = load_width_space("vgg_widths")
        X = np.vstack([[sp.largest()], rng.integers(sp.xl, sp.xu + 1, (n - 1, sp.n_var))])[:n]
        for x in X:
            yield create_model("vgg", num_classes=classes, in_channels=channels, **sp.decode(x)), sp.resolution, channels
    elif space.startswith("nat"):
        from natkit.methods.nat import load_nat_space
        from natkit.methods.nat_space import NATSpace
        from natkit.nets.ofa_mbv3 import OFAMobileNetV3

        config = load_nat_space(space)[0]
        net = OFAMobileNetV3(config, classes, channels).eval()
        sp = NATSpace(config, num_classes=classes, in_channels=channels)
        for x in np.vstack([sp.extremes(), sp.sample(max(0, n - 2), rng)])[:n]:
            arch = sp.decode(x)
            yield net.extract(arch), arch["resolution"], channels
    elif space == "pruned":
        from natkit.nets import create_model
        from natkit.prune.surgery import magnitude_prune

        for i in range(n):
            name = FAMILIES[i % len(FAMILIES)]
            model = create_model(name, num_classes=classes, in_channels=channels).eval()
            ratio = float(rng.uniform(0.0, 0.85))
            if ratio > 0.05:
                magnitude_prune(model, torch.zeros(1, channels, resolution, resolution), ratio=ratio,
                                importance="random", seed=int(rng.integers(1 << 30)),
                                global_pruning=bool(rng.integers(2)))
            yield model, resolution, channels
    else:
        raise ConfigError(f"unknown space {space!r} to profile; choose from {', '.join(SPACES)} or nat_imagenet")


def collect_units(networks) -> dict:
    """Distinct units (key -> spec) of the given ``(model, resolution, channels)`` in first-seen order."""
    from natkit.measure.units import model_units

    out: dict = {}
    for model, res, ch in networks:
        for u in model_units(model, res, ch):
            out.setdefault(u.key, u.spec)
    return out


def space_units(spaces=SPACES, n: int = 40, *, seed: int = 0, channels: int = 1, classes: int = 10) -> dict:
    units: dict = {}
    for s in spaces:
        for k, v in collect_units(sample_networks(s, n, seed=seed, channels=channels, classes=classes)).items():
            units.setdefault(k, v)
    return units


def write_script(path, units: dict) -> Path:
    """The standalone profiler with ``units`` embedded (numpy + onnxruntime are all it imports)."""
    src = (Path(__file__).with_name("profile_script.py")).read_text()
    payload = json.dumps([[k, v] for k, v in units.items()], separators=(",", ":"))
    body = (src + "\n\n# ---- the units natkit's spaces use (written by `natkit profile --write-script`) ----\n"
            f"UNITS = json.loads({payload!r})\n\n"
            "if __name__ == \"__main__\":\n    sys.exit(main(UNITS))\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def run_script(script, out, *, threads: int = 1, warmup: int = 5, repeats: int = 20, quiet: bool = False) -> dict:
    """Run the written profiler in a fresh interpreter, as the device would, and read its table."""
    cmd = [sys.executable, str(script), "--out", str(out), "--threads", str(threads), "--warmup", str(warmup),
           "--repeats", str(repeats)] + (["--quiet"] if quiet else [])
    proc = subprocess.run(cmd, text=True, capture_output=quiet)
    if proc.returncode != 0:
        raise NatkitError(f"the profiler failed (exit {proc.returncode}): {(proc.stderr or '').strip()[-300:]}")
    return json.loads(Path(out).read_text())
