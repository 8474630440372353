"""Accuracy predictors for NAT and their selection by cross-validated rank correlation."""

from natkit.surrogate.base import Surrogate, create_surrogate, list_surrogates, rank_metrics
from natkit.surrogate.adaptive import AdaptiveSurrogate, cross_validate

__all__ = ["Surrogate", "create_surrogate", "list_surrogates", "rank_metrics", "AdaptiveSurrogate",
           "cross_validate"]
