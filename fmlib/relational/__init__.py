"""Relation blocks (libFM's block structure, Rendle VLDB 2013): designs, predictions,
sweeps, gradient training.

Chapter "Beyond SGD: coordinate descent and MCMC", section "Relation blocks".
"""

from .chunks import BlockChunks
from .design import RelationalDesign, RelationBlock
from .movielens import movielens_design
from .prediction import predict, predict_tf

__all__ = [
    "BlockChunks",
    "RelationBlock",
    "RelationalDesign",
    "movielens_design",
    "predict",
    "predict_tf",
]
