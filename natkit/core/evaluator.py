"""Evaluators own the expensive part: build or extract a candidate, train it, measure it."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from natkit.errors import NatkitError


@dataclass(frozen=True)
class EvalResult:
    metrics: dict
    arch: dict | None = None
    status: str = "ok"
    message: str = ""
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0


class Evaluator:
    """``evaluate`` validates and times; ``_evaluate(encoding) -> (metrics, arch, extra)`` implements."""

    def settings(self) -> dict:
        """Everything that makes two evaluations of one encoding comparable (feeds the eval key)."""
        return {}

    def evaluate(self, encoding) -> EvalResult:
        t0 = time.perf_counter()
        try:
            metrics, arch, extra = self._evaluate(list(encoding))
        except NatkitError as exc:
            return EvalResult({}, None, "failed", str(exc), {}, time.perf_counter() - t0)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            # a candidate that breaks (e.g. shapes collapse) must not end the search
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return EvalResult({}, None, "failed", last[:500], {}, time.perf_counter() - t0)
        return EvalResult(dict(metrics), arch, "ok", "", dict(extra or {}), time.perf_counter() - t0)

    def _evaluate(self, encoding):
        raise NotImplementedError
