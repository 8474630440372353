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
    model: object = None  # the trained candidate (nn.Module), kept on disk by the problem if asked


class Evaluator:
    """``evaluate`` validates and times; ``_evaluate(encoding) -> (metrics, arch, extra[, model])``
    implements. Returning the trained model lets the run keep it for ``natkit export`` and the final
    test-split report."""

    def settings(self) -> dict:
        """Everything that makes two evaluations of one encoding comparable (feeds the eval key)."""
        return {}

    def evaluate(self, encoding) -> EvalResult:
        from natkit.core.numerics import eval_threads, torch_threads

        t0 = time.perf_counter()
        try:
            # a fixed thread count per evaluation, here and on Dask workers alike (see core/numerics.py)
            with torch_threads(getattr(self, "eval_threads", None) or eval_threads()):
                out = self._evaluate(list(encoding))
            metrics, arch, extra = out[:3]
            model = out[3] if len(out) > 3 else None
        except NatkitError as exc:
            return EvalResult({}, None, "failed", str(exc), {}, time.perf_counter() - t0)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            # a candidate that breaks (e.g. shapes collapse) must not end the search
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return EvalResult({}, None, "failed", last[:500], {}, time.perf_counter() - t0)
        return EvalResult(dict(metrics), arch, "ok", "", dict(extra or {}), time.perf_counter() - t0, model)

    def _evaluate(self, encoding):
        raise NotImplementedError
