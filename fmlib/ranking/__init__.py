"""Ranking with Factorization Machines: BPR on implicit feedback, catalogue scoring, top-k
metrics and the leave-last-out split (chapter "Ranking: learning from implicit feedback")."""

from fmlib.ranking.bpr import BPRDivergedError, NegativeSampler, bpr_loss, fit_bpr
from fmlib.ranking.data import ImplicitData, movielens_implicit
from fmlib.ranking.metrics import exclusion_mask, rank_counts, ranking_metrics
from fmlib.ranking.scoring import catalogue_scores, fm_parts, recommend
from fmlib.ranking.split import leave_last_out

__all__ = [
    "BPRDivergedError",
    "ImplicitData",
    "NegativeSampler",
    "bpr_loss",
    "catalogue_scores",
    "exclusion_mask",
    "fit_bpr",
    "fm_parts",
    "leave_last_out",
    "movielens_implicit",
    "rank_counts",
    "ranking_metrics",
    "recommend",
]
