"""The surrogate contract: ``fit(X, y)`` on encoded architectures, ``predict(X)``; a name registry."""

from __future__ import annotations

import contextlib

import numpy as np
from scipy import stats

from natkit.core.registry import Registry

surrogates = Registry("surrogate")  # families register from models.py and adaptive.py (imported by the package)


def register_surrogate(name: str):
    def deco(cls):
        cls.name = name
        surrogates.add(name, cls)
        return cls

    return deco


def list_surrogates() -> list[str]:
    return sorted(surrogates.names())


def create_surrogate(name: str, *, seed: int = 0, **kw) -> "Surrogate":
    return surrogates.create(name, seed=seed, **kw)


class Surrogate:
    """Public ``fit``/``predict`` validate shapes; subclasses implement ``_fit``/``_predict``."""

    name = "surrogate"
    min_samples = 2

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.n_features = None

    def fit(self, X, y) -> "Surrogate":
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float).ravel()
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be 2-D with one row per target, got {X.shape} and {y.shape}")
        if len(X) < self.min_samples:
            raise ValueError(f"{self.name} needs at least {self.min_samples} samples, got {len(X)}")
        if not np.all(np.isfinite(y)):
            raise ValueError("targets must be finite")
        self.n_features = X.shape[1]
        with _one_thread():
            self._fit(X, y)
        return self

    def predict(self, X) -> np.ndarray:
        if self.n_features is None:
            raise RuntimeError(f"{self.name} surrogate used before fit")
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {X.shape[1]}")
        with _one_thread():
            return np.asarray(self._predict(X), dtype=float).ravel()

    def _fit(self, X, y):
        raise NotImplementedError

    def _predict(self, X):
        raise NotImplementedError


_LIMITED = False


@contextlib.contextmanager
def _one_thread():
    # BLAS thread pools on a shared 2-core host slow these tiny fits down 20x (measured); entering
    # the limit costs milliseconds, so nested surrogates (ensembles, CV) enter it only once
    global _LIMITED
    if _LIMITED:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        _LIMITED = True
        try:
            yield
        finally:
            _LIMITED = False


def rank_metrics(y_true, y_pred) -> dict:
    """RMSE, Spearman rho and Kendall tau of predictions (rank quality is what selection needs)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return {"rmse": rmse, "spearman": 0.0, "kendall": 0.0}
    return {"rmse": rmse, "spearman": float(stats.spearmanr(y_true, y_pred)[0]),
            "kendall": float(stats.kendalltau(y_true, y_pred)[0])}
