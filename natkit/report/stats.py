"""The one statistics convention of every natkit benchmark.

- "m ± s" is the mean and the sample standard deviation with ``DDOF = 1`` (Bessel's correction) over
  the n independent units named beside it (seeds, unless said otherwise). With n = 1 there is no sd.
- A paired comparison is always **method minus baseline**, unit by unit (seed by seed): a positive
  difference means the method's number is larger. Its 95% interval is Student's t interval of the
  mean difference, ``mean ± t(0.975, n-1) · sd / sqrt(n)`` (scipy.stats.t), sd with ``DDOF = 1``.
  Whether larger is better depends on the quantity (accuracy: yes; error: no); the claim says which.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

DDOF = 1
CONFIDENCE = 0.95
SIGN = "method minus baseline"


def _arr(values) -> np.ndarray:
    a = np.asarray([float(v) for v in values], dtype=float)
    if a.ndim != 1 or not len(a):
        raise ValueError("need a non-empty list of numbers")
    return a


def sd(values) -> float:
    """Sample standard deviation (ddof=1); nan for a single value."""
    a = _arr(values)
    return float(a.std(ddof=DDOF)) if len(a) > 1 else float("nan")


def sd_axis0(array) -> np.ndarray:
    """Per-column sample sd (ddof=1) of a 2-D array whose rows are units (for error bars)."""
    a = np.asarray(array, dtype=float)
    return a.std(axis=0, ddof=DDOF) if len(a) > 1 else np.full(a.shape[1:], np.nan)


@dataclass(frozen=True)
class Summary:
    mean: float
    sd: float
    n: int

    def fmt(self, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
        m = f"{self.mean * scale:.{digits}f}"
        if self.n < 2:
            return f"{m}{unit} (n=1)"
        return f"{m} ± {self.sd * scale:.{digits}f}{unit}"

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(values) -> Summary:
    a = _arr(values)
    return Summary(float(a.mean()), sd(a), len(a))


@dataclass(frozen=True)
class Paired:
    """Method minus baseline, unit by unit; ``lo``/``hi`` bound the 95% t interval of the mean."""
    mean: float
    sd: float
    n: int
    lo: float
    hi: float
    above: int  # units where method > baseline
    equal: int
    below: int
    sign: str = SIGN

    def fmt(self, scale: float = 1.0, digits: int = 2, unit: str = " pts") -> str:
        if self.n < 2:
            return f"{self.mean * scale:+.{digits}f}{unit} (n=1, no interval)"
        return (f"{self.mean * scale:+.{digits}f}{unit} [95% CI {self.lo * scale:+.{digits}f}, "
                f"{self.hi * scale:+.{digits}f}], n={self.n}")

    def as_dict(self) -> dict:
        return asdict(self)


def paired(method, baseline, confidence: float = CONFIDENCE) -> Paired:
    """Paired difference ``method - baseline`` (equal-length sequences, same order of units)."""
    m, b = _arr(method), _arr(baseline)
    if len(m) != len(b):
        raise ValueError(f"paired samples differ in length: {len(m)} vs {len(b)}")
    return paired_diffs(m - b, confidence)


def paired_diffs(diffs, confidence: float = CONFIDENCE) -> Paired:
    """As ``paired`` for precomputed differences (already method minus baseline)."""
    from scipy import stats

    d = _arr(diffs)
    n = len(d)
    mean = float(d.mean())
    s = sd(d)
    if n > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * s / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = float("nan")
    eps = 1e-12
    return Paired(mean, s, n, lo, hi, int((d > eps).sum()), int((abs(d) <= eps).sum()), int((d < -eps).sum()))
