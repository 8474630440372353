"""Device latency tables: predict ``latency_ms`` without the device.

Two formats:

- natkit's own JSON table, written by the standalone profiler (``natkit profile``): the median
  onnxruntime time of each layer unit (``natkit/measure/units.py``) on the device, plus the fixed cost
  of one session run. A network is predicted as ``overhead + sum(unit - overhead)`` over its units. A unit
  the table lacks (a width no profiled network had) is estimated from the table's units of the same group
  (same operators, kernel, stride, depthwise or not) by a least-squares line in the unit's work (MACs, or
  elements for memory-bound operators); how many were estimated is kept in ``last_prediction``.
- the YAML look-up tables that OFA and nsganetv2 publish for the OFA MobileNetV3 space (e.g.
  ``i7-8700K_lut.yaml``, shipped in ``natkit/search_spaces/tables/``): one entry per layer configuration
  (``first_conv``, each ``MBConv``, ``final_expand_layer``, ``feature_mix_layer``, ``classifier``), summed
  over a NAT subnet's layers. These tables are for 3-channel, 1000-class ImageNet networks; another number
  of classes scales the classifier entry linearly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from natkit.errors import ConfigError

TABLES_DIR = Path(__file__).resolve().parents[1] / "search_spaces" / "tables"


def resolve_table(name_or_path: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    for cand in (TABLES_DIR / name_or_path, TABLES_DIR / f"{name_or_path}.json", TABLES_DIR / f"{name_or_path}.yaml"):
        if cand.is_file():
            return cand
    known = sorted(f.stem for f in TABLES_DIR.glob("*.*") if f.suffix in (".json", ".yaml"))
    raise ConfigError(f"latency table not found: {name_or_path} (shipped tables: {', '.join(known) or 'none'})")


def load_table(name_or_path: str):
    return _load(str(resolve_table(name_or_path).resolve()))


@lru_cache(maxsize=8)
def _load(path: str):
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        return OFALookupTable.from_file(p)
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"latency table {p} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != "natkit-latency-table":
        raise ConfigError(f"{p} is not a natkit latency table (write one with `natkit profile`)")
    return UnitTable(data, p)


class UnitTable:
    """natkit's per-unit onnxruntime table of one device.

    A unit timed alone carries costs a unit inside a network does not (its own input and output
    copies, layout reorders around it), so the table also holds sample networks timed whole. Per
    operator class (first operator; convolutions split into depthwise, 1x1 and larger kernels) natkit
    fits, by non-negative least squares on those networks, a scale of the summed unit times:
    ``latency = overhead + sum_c scale_c * sum(unit - overhead)`` (a class the networks lack keeps 1).
    (A per-unit cost per class besides the scale predicted held-out networks no better.) The scales are
    used only if they beat the plain sums in a 5-fold cross-validation over the networks (``fit``).
    """

    def __init__(self, data: dict, path=None):
        self.data, self.path = data, path
        self.units: dict = data["units"]
        self.overhead = float(data["overhead_ms"])
        self.last_prediction: dict = {}
        self._lines: dict = {}
        self.calibration = self._calibrate()

    def _excess(self, unit) -> tuple[str, float, bool]:
        ms = self.units.get(unit.key)
        if ms is None:
            return _op_class(unit.spec), self._estimate(unit), True
        return _op_class(unit.spec), max(0.0, ms - self.overhead), False

    def _features(self, classed) -> dict:
        f: dict = {}
        for c, e in classed:
            s, n = f.get(c, (0.0, 0))
            f[c] = (s + e, n + 1)
        return f

    def _calibrate(self) -> dict:
        nets = self.data.get("networks") or []
        order = self.data.get("unit_order") or []
        self.fit = {"networks": len(nets), "calibrated": False}
        if not nets or not order:
            return {}
        specs = {k: json.loads(k) for k in order}
        rows, ys = [], []
        for net in nets:
            classed = [(_op_class(specs[order[i]]), max(0.0, self.units[order[i]] - self.overhead))
                       for i in net["units"]]
            rows.append(self._features(classed))
            ys.append(net["ms"] - self.overhead)
        classes = sorted({c for r in rows for c in r})
        if len(nets) < 2 * len(classes):  # too few networks to calibrate every class: plain sums
            self.fit = {"networks": len(nets), "classes": len(classes), "calibrated": False}
            return {}
        from scipy.optimize import nnls

        A = np.array([[r.get(c, (0.0, 0))[0] for c in classes] for r in rows], float)
        y = np.array(ys, float)

        def rel(pred, idx):
            return list(np.abs(pred - y[idx]) / (y[idx] + self.overhead))

        # 5-fold cross-validation on the networks: keep the calibration only where it predicts unseen
        # networks better than the plain sums (on a noisy machine it can fit the noise instead)
        perm = np.random.default_rng(0).permutation(len(y))
        cv_cal, cv_plain = [], []
        for f in range(5):
            test, train = perm[f::5], np.setdiff1d(perm, perm[f::5])
            c_f, _ = nnls(A[train], y[train])
            cv_cal += rel(A[test] @ c_f, test)
            cv_plain += rel(A[test].sum(1), test)
        coef, _ = nnls(A, y)
        use = float(np.median(cv_cal)) < float(np.median(cv_plain))
        self.fit = {"networks": len(nets), "classes": len(classes), "calibrated": use,
                    "cv_median_abs_rel_error": float(np.median(cv_cal)),
                    "cv_median_abs_rel_error_plain": float(np.median(cv_plain))}
        return {c: float(coef[i]) for i, c in enumerate(classes)} if use else {}

    def predict_units(self, units) -> float:
        classed, estimated = [], 0
        for u in units:
            c, e, est = self._excess(u)
            classed.append((c, e))
            estimated += est
        total = self.overhead
        for c, (e, _) in self._features(classed).items():
            total += self.calibration.get(c, 1.0) * e
        self.last_prediction = {"units": len(units), "estimated": estimated}
        return float(total)

    def predict_model(self, model, resolution: int, in_channels: int) -> float:
        from natkit.measure.units import model_units

        return self.predict_units(model_units(model, resolution, in_channels))

    def _estimate(self, unit) -> float:
        a, b = self._line(unit.group)
        return max(0.0, a + b * unit.work)

    def _line(self, group: str):
        if group not in self._lines:
            parsed = self._parsed()
            pts = [(w, ms) for g, head, w, ms in parsed if g == group]
            if len(pts) < 2:  # too few of this exact group: every unit with the same first operator
                first = group.split("[")[0].split("+")[0]
                pts = [(w, ms) for g, head, w, ms in parsed if head == first]
            if len(pts) >= 2 and np.ptp([p[0] for p in pts]) > 0:
                x, y = np.array(pts).T
                b, a = np.polyfit(x, y, 1)
                self._lines[group] = (float(a), max(0.0, float(b)))
            else:
                self._lines[group] = (float(np.median([p[1] for p in pts])) if pts else 0.0, 0.0)
        return self._lines[group]

    def _parsed(self):
        if not hasattr(self, "_parsed_units"):
            from natkit.measure.units import _group, _work

            self._parsed_units = []
            for key, ms in self.units.items():
                spec = json.loads(key)
                self._parsed_units.append((_group(spec), spec["nodes"][0]["op"], _work(spec), ms - self.overhead))
        return self._parsed_units


class OFALookupTable:
    """A published OFA/nsganetv2 latency look-up table of the OFA MobileNetV3 space."""

    def __init__(self, entries: dict, path=None):
        self.entries, self.path = entries, path
        self.last_prediction: dict = {}

    @classmethod
    def from_file(cls, path) -> "OFALookupTable":
        try:
            import yaml
        except ImportError:  # pragma: no cover - a dependency
            raise ConfigError("reading a YAML latency table needs PyYAML: pip install pyyaml") from None
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"latency table {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) and "mean" in v for v in raw.values()):
            raise ConfigError(f"{path} is not an OFA latency look-up table (entries with a 'mean')")
        return cls({k: float(v["mean"]) for k, v in raw.items()}, path)

    def keys_for(self, arch: dict) -> list[tuple[str, float]]:
        """The table keys of a NAT subnet arch and the factor each entry counts with."""
        if arch.get("in_channels", 3) != 3:
            raise ConfigError("an OFA latency table describes 3-channel networks; this subnet takes "
                              f"{arch.get('in_channels')} channel(s)")
        r = arch["resolution"]
        h = _out(r, arch["stem_stride"])
        keys = [(f"first_conv-input:{r}x{r}x{arch['in_channels']}-output:{h}x{h}x{arch['stem']}", 1.0),
                (_mbconv(h, h, arch["stem"], arch["first_block"], 1, 3, 1, 0), 1.0)]
        for b in arch["blocks"]:
            h2 = _out(h, b["stride"])
            keys.append((_mbconv(h, h2, b["in"], b["out"], b["expand"], b["kernel"], b["stride"], b["se"]), 1.0))
            h = h2
        last = arch["blocks"][-1]["out"]
        keys.append((f"final_expand_layer-input:{h}x{h}x{last}-output:{h}x{h}x{arch['final_expand']}", 1.0))
        keys.append((f"feature_mix_layer-input:1x1x{arch['final_expand']}-output:1x1x{arch['feature_mix']}", 1.0))
        n = arch["num_classes"]
        keys.append((f"classifier-input:{arch['feature_mix']}-output:1000", n / 1000.0))
        return keys

    def predict_arch(self, arch: dict) -> float:
        total = 0.0
        for key, factor in self.keys_for(arch):
            if key not in self.entries:
                raise ConfigError(f"latency table {self.path} has no entry {key!r}")
            total += factor * self.entries[key]
        self.last_prediction = {"units": len(self.keys_for(arch)), "estimated": 0}
        return total

    def predict_model(self, model, resolution: int, in_channels: int) -> float:
        arch = getattr(model, "arch", None)
        if not isinstance(arch, dict) or "blocks" not in arch:
            raise ConfigError("an OFA MobileNetV3 latency table predicts NAT subnets only; this network is "
                              f"a {type(model).__name__}")
        return self.predict_arch(arch)


def _op_class(spec: dict) -> str:
    n = spec["nodes"][0]
    if n["op"] == "Conv":
        if n["attrs"].get("group", 1) > 1:
            return "Conv-dw"
        return "Conv-1x1" if max(n["attrs"].get("kernel_shape", [1])) == 1 else "Conv-kxk"
    return n["op"]


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1


def _mbconv(h, h2, c_in, c_out, expand, kernel, stride, se) -> str:
    idskip = int(stride == 1 and c_in == c_out)
    return (f"MBConv-input:{h}x{h}x{c_in}-output:{h2}x{h2}x{c_out}-expand:{float(expand):g}-kernel:{kernel}"
            f"-stride:{stride}-idskip:{idskip}-se:{int(bool(se))}")
