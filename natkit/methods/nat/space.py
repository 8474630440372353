"""NAT's search space: a 22-integer genome over the elastic MobileNetV3 supernet.

Genome ``x`` (integers): ``x[0]`` resolution index, ``x[1]`` width-multiplier index, then 20 layer
genes, four per stage: ``0`` = layer skipped, otherwise ``1 + kernel_index + 3 * expand_index``.
The first two layers of a stage are never skipped (depth >= 2), and a stage never skips a layer
while keeping a later one (``repair`` drops every layer after the first skipped one).

``count_params_macs(arch)`` gives parameters and multiply-accumulates in closed form, following the
counting rules of thop (the reference counter) for the layers of ``MBV3Subnet``; it is exact, not an
approximation, and the tests and ``python -m benchmarks.nat.counting`` check it against thop.
"""

from __future__ import annotations

import numpy as np

from natkit.errors import ConfigError
from natkit.methods.nat.ofa_mbv3 import MAX_DEPTH, N_STAGES, MBV3Config

N_LAYER_GENES = N_STAGES * MAX_DEPTH
N_VAR = 2 + N_LAYER_GENES

try:  # the core's abstract space, once it exists; the genome logic does not depend on it
    from natkit.core.space import SearchSpace as _SpaceBase
except Exception:  # pragma: no cover - only before the core lands
    _SpaceBase = object


class NATSpace(_SpaceBase):
    """Decision space of NAT for one supernet configuration and one task."""

    def __init__(self, config: MBV3Config, *, num_classes: int, in_channels: int):
        self.config, self.num_classes, self.in_channels = config, num_classes, in_channels
        xl = np.zeros(N_VAR, dtype=int)
        xu = np.full(N_VAR, 9, dtype=int)
        xu[0], xu[1] = len(config.resolutions) - 1, len(config.width_mults) - 1
        for s in range(N_STAGES):  # depth >= 2: the first two genes of a stage cannot be 0
            xl[2 + s * MAX_DEPTH: 2 + s * MAX_DEPTH + 2] = 1
        self.xl, self.xu = xl, xu

    # -- genome ---------------------------------------------------------------------------------
    def repair(self, x) -> list[int]:
        """Clip to bounds, round, and cut each stage at its first skipped layer."""
        return [int(v) for v in self.repair_many(np.atleast_2d(np.asarray(x, dtype=float)))[0]]

    def repair_many(self, X) -> np.ndarray:
        """``repair`` for a 2-D population at once."""
        X = np.clip(np.rint(np.asarray(X, dtype=float)), self.xl, self.xu).astype(int)
        genes = X[:, 2:].reshape(len(X), N_STAGES, MAX_DEPTH)
        skipped = np.cumsum(genes == 0, axis=2) > 0
        genes[skipped] = 0
        X[:, 2:] = genes.reshape(len(X), -1)
        return X

    def is_valid(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == (N_VAR,) and bool(np.array_equal(self.repair(x), x))

    def layers(self, x):
        """Per stage, the (kernel, expand) of each active layer."""
        x = np.asarray(self.repair(x))
        out = []
        for s in range(N_STAGES):
            stage = []
            for g in x[2 + s * MAX_DEPTH: 2 + (s + 1) * MAX_DEPTH]:
                if g == 0:
                    break
                stage.append((self.config.kernel_sizes[(g - 1) % 3], self.config.expand_ratios[(g - 1) // 3]))
            out.append(stage)
        return out

    def decode(self, x) -> dict:
        x = self.repair(x)
        arch = self.config.subnet_arch(self.config.resolutions[x[0]], self.config.width_mults[x[1]],
                                       self.layers(x), num_classes=self.num_classes,
                                       in_channels=self.in_channels)
        arch["genome"] = [int(v) for v in x]
        return arch

    def encode(self, arch: dict) -> np.ndarray:
        """Inverse of ``decode``: the genome of a subnet arch."""
        c = self.config
        try:
            x = np.zeros(N_VAR, dtype=int)
            x[0] = list(c.resolutions).index(arch["resolution"])
            x[1] = [float(w) for w in c.width_mults].index(float(arch["width_mult"]))
            for b in arch["blocks"]:
                k = list(c.kernel_sizes).index(b["kernel"])
                e = [float(v) for v in c.expand_ratios].index(float(b["expand"]))
                x[2 + b["stage"] * MAX_DEPTH + b["index"]] = 1 + k + 3 * e
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"arch does not belong to this NAT space: {exc}") from None
        if not self.is_valid(x):
            raise ConfigError("arch skips a layer of a stage while keeping a later one")
        return x

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform over resolution, width, depth per stage and (kernel, expand) per layer."""
        X = np.zeros((n, N_VAR), dtype=int)
        X[:, 0] = rng.integers(0, self.xu[0] + 1, n)
        X[:, 1] = rng.integers(0, self.xu[1] + 1, n)
        for s in range(N_STAGES):
            depth = rng.choice(self.config.depths, n)
            genes = rng.integers(1, 10, (n, MAX_DEPTH))
            genes[np.arange(MAX_DEPTH)[None, :] >= depth[:, None]] = 0
            X[:, 2 + s * MAX_DEPTH: 2 + (s + 1) * MAX_DEPTH] = genes
        return X

    def extremes(self) -> np.ndarray:
        """The largest and the smallest subnet (NAT seeds its archive with both)."""
        big = np.array([self.xu[0], self.xu[1]] + [9] * N_LAYER_GENES)
        small = np.array([0, 0] + ([1, 1, 0, 0] * N_STAGES))
        return np.stack([big, small])

    def features(self, X) -> np.ndarray:
        """Surrogate inputs: resolution and width indices, then per layer its kernel size and
        expand ratio (0 and 0 when skipped), so that nearby numbers mean similar layers."""
        X = self.repair_many(np.atleast_2d(X))
        genes = X[:, 2:]
        k = np.asarray(self.config.kernel_sizes, float)[(genes - 1) % 3]
        e = np.asarray(self.config.expand_ratios, float)[(genes - 1) // 3]
        k[genes == 0], e[genes == 0] = 0.0, 0.0
        return np.hstack([X[:, :2].astype(float), k, e])

    def count(self, x) -> dict:
        return count_params_macs(self.decode(x))


# ----------------------------------------------------------------------------------------------
# closed-form counting


def _out(h: int, stride: int) -> int:
    # same padding (k // 2) with odd k: floor((h - 1) / s) + 1, independent of k
    return (h - 1) // stride + 1


def count_params_macs(arch: dict) -> dict:
    """Parameters and MACs of ``MBV3Subnet(arch)`` for one image at ``arch['resolution']``.

    Conventions are thop's: a conv costs ``out_elements * in/groups * k * k`` (bias free), BN costs
    4 per input element (thop's 2, doubled when affine), adaptive average pooling ``(H*W + 1)``
    per output element, a linear layer ``in * out``; activations and the SE product cost nothing.
    """
    r, cin = arch["resolution"], arch["in_channels"]
    params = macs = 0

    def conv(c_in, c_out, k, h_out, groups=1, bias=False):
        nonlocal params, macs
        params += c_out * (c_in // groups) * k * k + (c_out if bias else 0)
        macs += c_out * h_out * h_out * (c_in // groups) * k * k

    def bn(c, h):
        nonlocal params, macs
        params += 2 * c
        macs += 4 * c * h * h  # thop: 2 per element, doubled for the affine part

    def pool(c, h):
        nonlocal macs
        macs += (h * h + 1) * c

    h = _out(r, arch["stem_stride"])
    conv(cin, arch["stem"], 3, h)
    bn(arch["stem"], h)
    conv(arch["stem"], arch["stem"], 3, h, groups=arch["stem"])
    bn(arch["stem"], h)
    conv(arch["stem"], arch["first_block"], 1, h)
    bn(arch["first_block"], h)
    for b in arch["blocks"]:
        conv(b["in"], b["mid"], 1, h)
        bn(b["mid"], h)
        h = _out(h, b["stride"])
        conv(b["mid"], b["mid"], b["kernel"], h, groups=b["mid"])
        bn(b["mid"], h)
        if b["se"]:
            pool(b["mid"], h)
            conv(b["mid"], b["se"], 1, 1, bias=True)
            conv(b["se"], b["mid"], 1, 1, bias=True)
        conv(b["mid"], b["out"], 1, h)
        bn(b["out"], h)
    conv(arch["blocks"][-1]["out"], arch["final_expand"], 1, h)
    bn(arch["final_expand"], h)
    pool(arch["final_expand"], h)
    conv(arch["final_expand"], arch["feature_mix"], 1, 1)
    conv(arch["feature_mix"], arch["num_classes"], 1, 1, bias=True)
    return {"params": int(params), "macs": int(macs)}
