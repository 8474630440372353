"""Fisher utility of pre-decision neurons and the choice of M'."""

import numpy as np
import pytest

from natkit.errors import ConfigError
from natkit.methods.lda import utility as U


def _blobs(n=300, seed=0):
    """Column 0 separates the classes, column 1 is pure noise, 2 is dead, 3 duplicates 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    disc = y * 2.0 + rng.normal(0, 0.5, n)
    noise = rng.normal(0, 3.0, n)
    X = np.stack([disc, noise, np.full(n, 1.5), disc, 0.3 * disc + rng.normal(0, 1, n)], axis=1)
    return X, y


def test_informative_columns_drop_dead_and_duplicates():
    X, _ = _blobs()
    assert U.informative_columns(X).tolist() == [True, True, False, False, True]


@pytest.mark.parametrize("method", ["diagonal", "full"])
def test_discriminative_neuron_beats_noise_neuron(method):
    X, y = _blobs()
    u = U.top_layer_utility(X, y, method)
    assert u[0] > u[4] > 0
    assert u[0] > 10 * u[1]
    assert u[2] == 0 and u[3] == 0


def test_diagonal_fisher_matches_definition():
    X, y = _blobs(seed=3)
    col = X[:, 1]
    within = sum((y == k).sum() * col[y == k].var() for k in np.unique(y)) / len(y)
    between = sum((y == k).sum() * (col[y == k].mean() - col.mean()) ** 2 for k in np.unique(y)) / len(y)
    assert U.diagonal_fisher(X, y)[1] == pytest.approx(between / within, rel=1e-9)


def test_keep_top_and_share():
    u = np.array([0.1, 5.0, 0.0, 2.0])
    assert U.keep_top(u, 2).tolist() == [False, True, False, True]
    assert U.share_to_count(0.5, 4) == 2
    assert U.share_to_count(0.01, 4) == 1
    with pytest.raises(ConfigError):
        U.share_to_count(0.0, 4)


def test_otsu_separates_two_modes():
    rng = np.random.default_rng(0)
    u = np.concatenate([10 ** rng.normal(-3, 0.2, 40), 10 ** rng.normal(1, 0.2, 7)])
    assert U.select_by_otsu(u) == 7


def test_validation_sensitivity_keeps_only_what_is_needed():
    X, y = _blobs(600, seed=1)
    u = U.diagonal_fisher(X, y)
    s = U.select_by_validation(X[:400], y[:400], X[400:], y[400:], u, tolerance=0.01)
    assert s.m == 1  # the discriminative column alone keeps the accuracy
    assert s.reference > 0.9
    noise_first = U.select_by_validation(X[:400], y[:400], X[400:], y[400:], -u, tolerance=0.01)
    assert noise_first.m > 1


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError):
        U.diagonal_fisher(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ConfigError):
        U.top_layer_utility(np.ones((3, 2)), np.zeros(3), "pca")
