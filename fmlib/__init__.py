"""fmlib: Factorization Machines (Rendle, ICDM 2010) in TensorFlow 2.

The library behind the book "Factorization Machines in TensorFlow 2". Each
public name points to the chapter that explains it.

Importing ``fmlib`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` when the variable is unset and TensorFlow
is not yet imported: TensorFlow's C++ info and warning lines are hidden, its errors are not.
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._inputs import to_sparse_tensor  # noqa: E402  (after the log level)
from .encoding import FeatureEncoder, IndexMap
from .keras_fm import FieldFMLayer, FMLayer, FMModel, build_fm_model
from .losses import l2_loss, l2_penalty, logistic_loss
from .mcmc import BayesianFM
from .model import FactorizationMachine
from .movielens import MovieLens, MovieLensError, MovieLensTimeout, load_movielens
from .pairwise import pairwise_fast, pairwise_naive
from .synthetic import PlantedFM, SyntheticRatings, make_ratings
from .toy import rendle_figure1, rendle_figure1_frame
from .relational import RelationalDesign, RelationBlock, movielens_design
from .training import TrainingDivergedError, evaluate, fit, train_step

__version__ = "0.1.0"

__all__ = [
    "BayesianFM",
    "FactorizationMachine",
    "FeatureEncoder",
    "FieldFMLayer",
    "FMLayer",
    "FMModel",
    "IndexMap",
    "MovieLens",
    "MovieLensError",
    "MovieLensTimeout",
    "PlantedFM",
    "SyntheticRatings",
    "TrainingDivergedError",
    "build_fm_model",
    "evaluate",
    "fit",
    "l2_loss",
    "l2_penalty",
    "load_movielens",
    "logistic_loss",
    "make_ratings",
    "pairwise_fast",
    "pairwise_naive",
    "rendle_figure1",
    "rendle_figure1_frame",
    "to_sparse_tensor",
    "train_step",
    # relation blocks
    "RelationalDesign",
    "RelationBlock",
    "movielens_design",
]
