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
                    resolution: int | None = None):
    """``n`` networks of one of natkit's spaces, with random weights: ``(model, resolution, channels)``.
    ``resolution`` is the input size of the width and pruned networks (default: the width space's own, and
    28 px for pruned); NAT subnets take the resolutions of their space."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if space == "width":
        from natkit.methods.width.space import load_width_space
        from natkit.nets import create_model

        sp = load_width_space("vgg_widths")
        X = np.vstack([[sp.largest()], rng.integers(sp.xl, sp.xu + 1, (n - 1, sp.n_var))])[:n]
        for x in X:
            yield (create_model("vgg", num_classes=classes, in_channels=channels, **sp.decode(x)),
                   resolution or sp.resolution, channels)
    elif space.startswith("nat"):
        from natkit.methods.nat.method import load_nat_space
        from natkit.methods.nat.space import NATSpace
        from natkit.methods.nat.ofa_mbv3 import OFAMobileNetV3

        config = load_nat_space(space)[0]
        net = OFAMobileNetV3(config, classes, channels).eval()
        sp = NATSpace(config, num_classes=classes, in_channels=channels)
        for x in np.vstack([sp.extremes(), sp.sample(max(0, n - 2), rng)])[:n]:
            arch = sp.decode(x)
            yield net.extract(arch), arch["resolution"], channels
    elif space == "pruned":
        from natkit.nets import create_model
        from natkit.prune.surgery import magnitude_prune

        resolution = resolution or 28
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


def collect(networks, *, payload: dict | None = None, label: str = "", calibrate_every: int = 1) -> dict:
    """Add the distinct units of ``(model, resolution, channels)`` networks to a profiler payload
    ``{"units": [[key, spec], ...], "networks": [...]}``; every ``calibrate_every``-th network is also
    kept whole (its graph spec and unit indices) for calibration."""
    from natkit.measure.units import graph_spec, graph_units
    from natkit.measure.units import export_proto

    payload = payload or {"units": [], "networks": []}
    index = {k: i for i, (k, _) in enumerate(payload["units"])}
    for j, (model, res, ch) in enumerate(networks):
        proto = export_proto(model, res, ch)
        ids = []
        for u in graph_units(proto):
            if u.key not in index:
                index[u.key] = len(payload["units"])
                payload["units"].append([u.key, u.spec])
            ids.append(index[u.key])
        if calibrate_every and j % calibrate_every == 0:
            payload["networks"].append({"name": f"{label}{j}", "spec": graph_spec(proto), "units": ids})
    return payload


def space_payload(spaces=SPACES, n: int = 40, *, seed: int = 0, channels: int = 1, classes: int = 10,
                  resolution: int | None = None, calibrate_every: int = 1) -> dict:
    """Units (and calibration networks) of ``n`` random networks of each space."""
    payload = None
    for s in spaces:
        payload = collect(sample_networks(s, n, seed=seed, channels=channels, classes=classes, resolution=resolution),
                          payload=payload, label=f"{s}-", calibrate_every=calibrate_every)
    return payload


def write_script(path, payload: dict) -> Path:
    """The standalone profiler with the payload embedded (numpy + onnxruntime are all it imports)."""
    src = (Path(__file__).resolve().parents[1] / "measure" / "profile_script.py").read_text()
    blob = json.dumps(payload, separators=(",", ":"))
    body = (src + "\n\n# ---- the units natkit's spaces use (written by `natkit profile`) ----\n"
            f"PAYLOAD = json.loads({blob!r})\n\n"
            "if __name__ == \"__main__\":\n    sys.exit(main(PAYLOAD))\n")
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


def cmd_profile(args) -> int:
    """``natkit profile``: collect the units, write the script, and run it here unless only written."""
    if not args.out and not args.write_script:
        raise ConfigError("give --out DEVICE.json (profile this machine) and/or --write-script FILE (for a device)")
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    bad = [s for s in spaces if s not in SPACES + ("nat_imagenet",)]
    if bad or not spaces:
        raise ConfigError(f"unknown space {bad[0] if bad else ''!r} to profile; choose from "
                          f"{', '.join(SPACES + ('nat_imagenet',))}")
    for k in ("samples", "channels", "classes", "threads", "repeats"):
        if getattr(args, k) < 1:
            raise ConfigError(f"--{k} must be a positive integer, got {getattr(args, k)}")
    res = getattr(args, "resolution", None)
    if res is not None and not 8 <= res <= 1024:
        raise ConfigError(f"--resolution must be an image size in pixels between 8 and 1024, got {res}")
    payload = space_payload(spaces, args.samples, seed=args.seed, channels=args.channels, classes=args.classes,
                            resolution=res)
    print(f"{len(payload['units'])} distinct units and {len(payload['networks'])} calibration networks from "
          f"{args.samples} random networks of each of {', '.join(spaces)}")
    if args.write_script:
        write_script(args.write_script, payload)
        print(f"{args.write_script}: run it on the device: python {Path(args.write_script).name} --out DEVICE.json "
              f"--threads {args.threads}")
    if args.out:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="natkit-profile-") as d:
            script = Path(args.write_script) if args.write_script else write_script(Path(d) / "profile.py", payload)
            run_script(script, args.out, threads=args.threads, warmup=args.warmup, repeats=args.repeats)
        from natkit.measure.tables import load_table

        table = load_table(args.out)
        print(f"{args.out}: overhead {table.overhead:.4f} ms per run; calibration {table.fit}")
    return 0
