"""Task utility of pre-decision neurons from a Fisher LDA (Tian, Arbel, Clark: Deep LDA pruning).

The pre-decision activations ``X`` (images x neurons) of the target's training split are scored
against the target labels. Columns that carry nothing are dropped first: zero variance (dead or
constant neurons) and exact duplicates (only the first copy keeps its score). Dropped columns get
utility 0, so they rank last and are never kept ahead of a live neuron.

* ``diagonal_fisher``: pre-decision neurons are highly decorrelated, so the paper treats the
  within-class and between-class scatter as diagonal; neuron j's utility is
  sigma_b^2(j) / sigma_w^2(j) with sigma_b^2 = sigma_total^2 - sigma_w^2.
* ``full_lda``: the full LDA for comparison, through scikit-learn's eigen solver (eigenvectors of
  Sigma_w^-1 Sigma_b); utility_j = sum_k |W_jk| lambda_k over the discriminant directions.

The number of neurons to keep, M', comes from ``select_by_validation`` (fewest top neurons whose
frozen features still give the full validation accuracy) or ``select_by_otsu``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from natkit.errors import ConfigError

UTILITY_METHODS = ("diagonal", "full")


def informative_columns(X: np.ndarray, *, tol: float = 1e-10, decimals: int = 6) -> np.ndarray:
    """Boolean mask of columns that have variance and are the first of their duplicates."""
    X = _check_matrix(X)
    keep = X.var(axis=0) > tol * max(1.0, float(np.abs(X).max(initial=0.0)) ** 2)
    # exact duplicates after rounding: the same neuron copied (e.g. two identical filters downstream)
    _, first = np.unique(np.round(X, decimals).T, axis=0, return_index=True)
    is_first = np.zeros(X.shape[1], dtype=bool)
    is_first[first] = True
    return keep & is_first


def diagonal_fisher(X: np.ndarray, y: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """sigma_b^2 / sigma_w^2 per column; 0 for columns dropped by ``informative_columns``."""
    X, y = _check_matrix(X), _check_labels(y, len(X))
    live = informative_columns(X)
    Xc = X[:, live].astype(np.float64)
    total = Xc.var(axis=0)
    within = np.zeros_like(total)
    for k in np.unique(y):
        xk = Xc[y == k]
        within += len(xk) * xk.var(axis=0)
    within /= len(Xc)
    between = np.clip(total - within, 0.0, None)
    # a neuron constant within every class but varying across them is perfectly discriminative:
    # floor sigma_w^2 relative to the layer's scale so it ranks first instead of dividing by zero
    floor = eps + 1e-6 * float(total.mean()) if total.size else eps
    u = np.zeros(X.shape[1])
    u[live] = between / np.maximum(within, floor)
    return u


def full_lda(X: np.ndarray, y: np.ndarray, *, shrinkage="auto") -> np.ndarray:
    """sum_k |W_jk| * lambda_k over the LDA directions (scikit-learn eigen solver, shrunk Sigma_w)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = _check_matrix(X), _check_labels(y, len(X))
    live = informative_columns(X)
    u = np.zeros(X.shape[1])
    if live.sum() == 0 or len(np.unique(y)) < 2:
        return u
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    lda.fit(X[:, live].astype(np.float64), y)
    n_dir = min(len(lda.explained_variance_ratio_), lda.scalings_.shape[1])
    W = lda.scalings_[:, :n_dir]
    lam = lda.explained_variance_ratio_[:n_dir]
    u[live] = np.abs(W) @ lam
    return u


def top_layer_utility(X: np.ndarray, y: np.ndarray, method: str = "diagonal") -> np.ndarray:
    if method == "diagonal":
        return diagonal_fisher(X, y)
    if method == "full":
        return full_lda(X, y)
    raise ConfigError(f"unknown LDA utility {method!r}; use one of {', '.join(UTILITY_METHODS)}")


def keep_top(utility: np.ndarray, m: int) -> np.ndarray:
    """Boolean mask of the m highest-utility columns (ties broken by index, stable)."""
    utility = np.asarray(utility, dtype=np.float64)
    m = int(min(max(m, 1), utility.size))
    order = np.argsort(-utility, kind="stable")
    mask = np.zeros(utility.size, dtype=bool)
    mask[order[:m]] = True
    return mask


def share_to_count(share: float, n: int) -> int:
    """M' from a kept share in (0, 1]; at least one neuron."""
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"kept share M' must be in (0, 1], got {share!r}")
    return int(max(1, min(n, round(share * n))))


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's between-class-variance threshold on a 1-D sample.

    Written out (a dozen lines) because scikit-image, which has it, is not a dependency.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2 or np.ptp(v) == 0:
        return float(v.min(initial=0.0))
    hist, edges = np.histogram(v, bins=bins)
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centers)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def select_by_otsu(utility: np.ndarray) -> int:
    """M' = number of live neurons above Otsu's threshold on log utility.

    Fisher ratios span orders of magnitude, so the two modes (task-relevant vs not) separate on a
    log scale; on the raw scale one outlier would take the whole upper class.
    """
    u = np.asarray(utility, dtype=np.float64)
    live = u[u > 0]
    if live.size == 0:
        return 1
    t = otsu_threshold(np.log10(live))
    return int(max(1, (np.log10(live) >= t).sum()))


@dataclass(frozen=True)
class Sensitivity:
    m: int
    counts: tuple
    val_accuracy: tuple
    reference: float


def select_by_validation(X_train, y_train, X_val, y_val, utility, *, tolerance: float = 0.0,
                         counts=None, seed: int = 0) -> Sensitivity:
    """Fewest top-utility neurons whose frozen features keep the full validation accuracy.

    "Frozen features": only a linear read-out (a shrunk LDA classifier on standardised activations,
    closed form, so a dozen fits cost milliseconds; logistic regression took a minute here) is refitted on the kept neurons, so the score measures
    what the kept features carry.
    ``tolerance`` is the accuracy (fraction) we may give up against all neurons.
    """
    X_train, X_val = _check_matrix(X_train), _check_matrix(X_val)
    y_train, y_val = _check_labels(y_train, len(X_train)), _check_labels(y_val, len(X_val))
    d = X_train.shape[1]
    if counts is None:
        counts = sorted({int(c) for c in np.unique(np.round(np.geomspace(1, d, num=12)))} | {d})
    counts = sorted({int(min(max(c, 1), d)) for c in counts} | {d})
    order = np.argsort(-np.asarray(utility, dtype=np.float64), kind="stable")
    acc = {c: _readout_accuracy(X_train[:, order[:c]], y_train, X_val[:, order[:c]], y_val, seed)
           for c in counts}
    ref = acc[d]
    m = next(c for c in counts if acc[c] >= ref - tolerance)
    return Sensitivity(m=m, counts=tuple(counts), val_accuracy=tuple(acc[c] for c in counts), reference=ref)


def _readout_accuracy(Xtr, ytr, Xva, yva, seed) -> float:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(ytr)) < 2:
        return float(np.mean(yva == ytr[0]))
    clf = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
    clf.fit(Xtr, ytr)
    return float(clf.score(Xva, yva))


def _check_matrix(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ConfigError(f"activations must be a non-empty (images, neurons) matrix, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("activations contain NaN or inf")
    return X


def _check_labels(y, n) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.shape[0] != n:
        raise ConfigError(f"{y.shape[0]} labels for {n} activation rows")
    return y
