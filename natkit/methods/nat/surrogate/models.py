"""Surrogate families: RBF (cubic kernel, linear tail), NAT's RBF ensemble on random feature
subsets, Gaussian process, MLP and a tree ensemble. Each wraps scipy or scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np

from natkit.methods.nat.surrogate.base import Surrogate, register_surrogate


class _Scaled(Surrogate):
    """Min-max scaling of inputs and standardisation of targets around any regressor."""

    def _scale_fit(self, X, y):
        self._lo, span = X.min(0), np.ptp(X, 0)
        self._span = np.where(span > 0, span, 1.0)
        self._mu, self._sd = y.mean(), (y.std() or 1.0)
        return (X - self._lo) / self._span, (y - self._mu) / self._sd

    def _scale_x(self, X):
        return (X - self._lo) / self._span

    def _unscale_y(self, y):
        return y * self._sd + self._mu


@register_surrogate("rbf")
class RBF(_Scaled):
    """Cubic radial basis functions with a linear polynomial tail (scipy's ``RBFInterpolator``)."""

    min_samples = 4

    def __init__(self, seed: int = 0, smoothing: float = 1e-3):
        super().__init__(seed)
        self.smoothing = smoothing

    def _fit(self, X, y):
        from scipy.interpolate import RBFInterpolator

        Xs, ys = self._scale_fit(X, y)
        keep = np.ptp(Xs, 0) > 0  # constant columns make the linear tail singular
        self._keep = keep if keep.any() else np.ones_like(keep)
        Xs = Xs[:, self._keep]
        # the linear tail needs more distinct points than dimensions; with fewer (a young archive) a
        # constant tail plus smoothing keeps the system solvable, so scipy's warning is expected there
        degree = 1 if len(np.unique(Xs, axis=0)) > Xs.shape[1] + 1 else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                self._model = RBFInterpolator(Xs, ys, kernel="cubic", degree=degree, smoothing=self.smoothing)
            except np.linalg.LinAlgError:  # collinear inputs (e.g. one-hot genes) leave the tail rank-deficient
                self._model = RBFInterpolator(Xs, ys, kernel="cubic", degree=0, smoothing=self.smoothing)

    def _predict(self, X):
        return self._unscale_y(self._model(self._scale_x(X)[:, self._keep]))


@register_surrogate("rbf_ensemble")
class RBFEnsemble(Surrogate):
    """NAT's ensemble: RBF models each fitted on a random subset of the features; mean prediction."""

    min_samples = 4

    def __init__(self, seed: int = 0, n_members: int = 25, feature_fraction: float = 0.6):
        super().__init__(seed)
        self.n_members, self.feature_fraction = n_members, feature_fraction

    def _fit(self, X, y):
        rng = np.random.default_rng(self.seed)
        varying = np.flatnonzero(np.ptp(X, 0) > 0)
        pool = varying if len(varying) else np.arange(X.shape[1])
        k = max(1, int(round(self.feature_fraction * len(pool))))
        self._members = []
        for _ in range(self.n_members):
            cols = np.sort(rng.choice(pool, k, replace=False))
            self._members.append((cols, RBF(seed=self.seed).fit(X[:, cols], y)))

    def _predict(self, X):
        return np.mean([m.predict(X[:, cols]) for cols, m in self._members], axis=0)


@register_surrogate("gp")
class GP(_Scaled):
    """Gaussian process with an ARD-free Matern 5/2 kernel plus noise (scikit-learn)."""

    min_samples = 3

    def _fit(self, X, y):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        from sklearn.exceptions import ConvergenceWarning

        Xs, ys = self._scale_fit(X, y)
        kernel = ConstantKernel(1.0) * Matern(length_scale=1.0, nu=2.5) + WhiteKernel(1e-2)
        with warnings.catch_warnings():  # hyper-parameters at their bounds are fine for ranking
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0,
                                                   random_state=self.seed).fit(Xs, ys)

    def _predict(self, X):
        return self._unscale_y(self._model.predict(self._scale_x(X)))


@register_surrogate("mlp")
class MLP(_Scaled):
    """A small multi-layer perceptron (scikit-learn), L-BFGS for the tiny archives NAT fits on."""

    min_samples = 4

    def __init__(self, seed: int = 0, hidden=(32,), alpha: float = 1e-2):
        super().__init__(seed)
        self.hidden, self.alpha = tuple(hidden), alpha

    def _fit(self, X, y):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        Xs, ys = self._scale_fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model = MLPRegressor(hidden_layer_sizes=self.hidden, alpha=self.alpha, solver="lbfgs", max_iter=300,
                                       random_state=self.seed).fit(Xs, ys)

    def _predict(self, X):
        return self._unscale_y(self._model.predict(self._scale_x(X)))


@register_surrogate("trees")
class Trees(Surrogate):
    """Extremely randomised trees (scikit-learn): robust on small, noisy archives."""

    def __init__(self, seed: int = 0, n_estimators: int = 100):
        super().__init__(seed)
        self.n_estimators = n_estimators

    def _fit(self, X, y):
        from sklearn.ensemble import ExtraTreesRegressor

        self._model = ExtraTreesRegressor(self.n_estimators, min_samples_leaf=1, random_state=self.seed,
                                          n_jobs=1).fit(X, y)

    def _predict(self, X):
        return self._model.predict(X)
