"""Ranking with Factorization Machines: BPR on implicit feedback, catalogue scoring, top-k
metrics and the leave-last-out split (chapter "Ranking: learning from implicit feedback")."""
from .bpr import BPRDivergedError, NegativeSampler, bpr_loss, fit_bpr
from .data import ImplicitData, movielens_implicit
from .metrics import exclusion_mask, rank_counts, ranking_metrics
from .scoring import catalogue_scores, fm_parts, recommend
from .split import leave_last_out

__all__ = ["BPRDivergedError", "ImplicitData", "NegativeSampler", "bpr_loss", "catalogue_scores",
           "exclusion_mask", "fit_bpr", "fm_parts", "leave_last_out", "movielens_implicit",
           "rank_counts", "ranking_metrics", "recommend"]
