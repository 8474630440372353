"""Accuracy predictors for NAT and their selection by cross-validated rank correlation."""

from natkit.methods.nat.surrogate.base import Surrogate, create_surrogate, list_surrogates, rank_metrics
from natkit.methods.nat.surrogate.adaptive import AdaptiveSurrogate, cross_validate

__all__ = ["Surrogate", "create_surrogate", "list_surrogates", "rank_metrics", "AdaptiveSurrogate",
           "cross_validate"]
