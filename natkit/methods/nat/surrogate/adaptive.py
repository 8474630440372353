"""NAT's adaptive switch: pick the surrogate with the best cross-validated Kendall tau (mean - std)."""

from __future__ import annotations

import numpy as np

from natkit.methods.nat.surrogate.base import Surrogate, create_surrogate, rank_metrics, register_surrogate

DEFAULT_POOL = ("rbf", "rbf_ensemble", "gp", "mlp", "trees")


def cross_validate(name: str, X, y, *, folds: int = 5, seed: int = 0) -> list[float]:
    """Kendall tau on each held-out fold of a seeded k-fold split."""
    from sklearn.model_selection import KFold

    X, y = np.asarray(X, float), np.asarray(y, float)
    taus = []
    for tr, te in KFold(min(folds, len(X)), shuffle=True, random_state=seed).split(X):
        model = create_surrogate(name, seed=seed)
        if len(tr) < model.min_samples:
            continue
        model.fit(X[tr], y[tr])
        taus.append(rank_metrics(y[te], model.predict(X[te]))["kendall"])
    return taus


@register_surrogate("adaptive")
class AdaptiveSurrogate(Surrogate):
    """Cross-validates every surrogate in ``pool`` and refits the winner on all data.

    The score is mean - std of the per-fold Kendall tau: a surrogate that ranks well only on
    some folds loses to a steadier one. ``scores`` and ``chosen`` record the decision.
    """

    min_samples = 6

    def __init__(self, seed: int = 0, pool=DEFAULT_POOL, folds: int = 5):
        super().__init__(seed)
        self.pool, self.folds = tuple(pool), folds
        self.scores: dict = {}
        self.chosen: str | None = None

    def _fit(self, X, y):
        self.scores = {}
        for name in self.pool:
            taus = cross_validate(name, X, y, folds=self.folds, seed=self.seed)
            self.scores[name] = float(np.mean(taus) - np.std(taus)) if taus else -np.inf
        self.chosen = max(self.pool, key=lambda n: self.scores[n])
        self._model = create_surrogate(self.chosen, seed=self.seed).fit(X, y)

    def _predict(self, X):
        return self._model.predict(X)
