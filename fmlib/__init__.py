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
from .synthetic_stream import RatingStream, stream_ratings
from .toy import rendle_figure1, rendle_figure1_frame
from .relational import RelationalDesign, RelationBlock, movielens_design
from .relational import BlockChunks  # batches grouped by a block's rows
from .training import TrainingDivergedError, evaluate, fit, train_step
# scikit-learn estimators and libFM files (chapter "Using fmlib with scikit-learn and libFM files")
from .interop import FMClassifier, FMRegressor, LibFMFormatError, load_libfm, save_libfm
from .family import (FieldAwareFMLayer, HigherOrderFMLayer, anova_fast, anova_naive,
                     build_deepfm_model, build_ffm_model, build_higher_order_fm_model)

# Chapter "The paper's claims, reproduced": other factorization models as FMs, and the
# degree-2 polynomial (SVM) model.
from .mimic import (fm_from_fpmc, fm_from_mf, fm_from_pitf, fm_from_svdpp, fpmc_extra_terms,
                    fpmc_features, mf_features, mf_from_fm, pitf_features, svdpp_extra_terms,
                    svdpp_features)
from .poly2 import Poly2Regression, poly2_expand
# Ranking from implicit feedback (chapter "Ranking: learning from implicit feedback")
from . import ranking  # noqa: E402
from .ranking import (catalogue_scores, fit_bpr, leave_last_out, ranking_metrics,  # noqa: E402
                      recommend)

from . import distributed  # noqa: E402  (fmlib.distributed: several processes / machines)

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
    "RatingStream",
    "SyntheticRatings",
    "TrainingDivergedError",
    "build_fm_model",
    "distributed",
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
    "stream_ratings",
    "to_sparse_tensor",
    "train_step",
    # the FM family (chapter "The FM family")
    "FieldAwareFMLayer",
    "HigherOrderFMLayer",
    "anova_fast",
    "anova_naive",
    "build_deepfm_model",
    "build_ffm_model",
    "build_higher_order_fm_model",
    # The paper's claims, reproduced
    "Poly2Regression",
    "fm_from_fpmc",
    "fm_from_mf",
    "fm_from_pitf",
    "fm_from_svdpp",
    "fpmc_extra_terms",
    "fpmc_features",
    "mf_features",
    "mf_from_fm",
    "pitf_features",
    "poly2_expand",
    "svdpp_extra_terms",
    "svdpp_features",
    # ranking
    "catalogue_scores",
    "fit_bpr",
    "leave_last_out",
    "ranking",
    "ranking_metrics",
    "recommend",
    # fmlib.interop
    "FMClassifier",
    "FMRegressor",
    "LibFMFormatError",
    "load_libfm",
    "save_libfm",
    # relation blocks
    "RelationalDesign",
    "RelationBlock",
    "movielens_design",
    # minibatches grouped by a relation block's rows
    "BlockChunks",
]
