"""Accuracy predictors for NAT and their selection by cross-validated rank correlation. Importing the
package registers every family (``models``, ``adaptive``) in ``base.surrogates``."""

from natkit.methods.nat.surrogate import models  # noqa: F401  (registers rbf, rbf_ensemble, gp, mlp, trees)
from natkit.methods.nat.surrogate.adaptive import AdaptiveSurrogate, cross_validate
from natkit.methods.nat.surrogate.base import Surrogate, create_surrogate, list_surrogates, rank_metrics

__all__ = ["Surrogate", "create_surrogate", "list_surrogates", "rank_metrics", "AdaptiveSurrogate",
           "cross_validate"]
