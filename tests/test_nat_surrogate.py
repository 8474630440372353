"""Surrogates: each ranks a smooth target well, the adaptive switch picks by CV Kendall tau."""

import numpy as np
import pytest

from natkit.errors import ConfigError
from natkit.methods.nat.surrogate import AdaptiveSurrogate, create_surrogate, list_surrogates, rank_metrics


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(n, 8)).astype(float)
    y = 0.3 * X[:, 0] - 0.2 * X[:, 1] + 0.05 * X[:, 2] ** 2 + 0.1 * X[:, 3] * X[:, 4] + rng.normal(0, 0.05, n)
    return X, y


@pytest.mark.parametrize("name", ["rbf", "rbf_ensemble", "gp", "mlp", "trees"])
def test_each_surrogate_ranks_held_out_points(name):
    X, y = _data(90)
    model = create_surrogate(name, seed=0).fit(X[:60], y[:60])
    m = rank_metrics(y[60:], model.predict(X[60:]))
    assert m["kendall"] > 0.4, m  # a random ranking scores about 0
    assert m["rmse"] < np.std(y)


def test_registry_lists_all_families():
    assert set(list_surrogates()) >= {"rbf", "rbf_ensemble", "gp", "mlp", "trees", "adaptive"}
    with pytest.raises(ConfigError):
        create_surrogate("nope")


def test_adaptive_picks_best_cv_score_and_is_deterministic():
    X, y = _data(40)
    a = AdaptiveSurrogate(seed=1, pool=("rbf_ensemble", "trees", "gp"), folds=4).fit(X, y)
    assert a.chosen == max(a.scores, key=a.scores.get)
    b = AdaptiveSurrogate(seed=1, pool=("rbf_ensemble", "trees", "gp"), folds=4).fit(X, y)
    assert a.chosen == b.chosen
    np.testing.assert_allclose(a.predict(X[:5]), b.predict(X[:5]))




def test_input_validation():
    m = create_surrogate("trees")
    with pytest.raises(RuntimeError):
        m.predict(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        m.fit(np.zeros((5, 3)), np.zeros(4))
    m.fit(np.random.default_rng(0).random((6, 3)), np.arange(6.0))
    with pytest.raises(ValueError):
        m.predict(np.zeros((2, 4)))


def test_rank_metrics_perfect_and_reversed():
    y = np.arange(10.0)
    assert rank_metrics(y, y)["kendall"] == pytest.approx(1.0)
    assert rank_metrics(y, -y)["spearman"] == pytest.approx(-1.0)
