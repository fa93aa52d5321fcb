"""fmlib: Factorization Machines (Rendle, ICDM 2010) in TensorFlow 2.

The library behind the book "Factorization Machines in TensorFlow 2". Its packages follow
the book's parts, each importing only from the ones below it:

=====================  ===================================================================
``fmlib.validation``   argument and input checks shared by every package
``fmlib.model``        the FM: eq. (1), Lemma 3.1, losses, saving, the paper's toy data
``fmlib.data``         synthetic ratings, streams, MovieLens, the encoder, relation blocks
``fmlib.learning``     gradient training: steps, optimizers, the epoch loop, Keras layers
``fmlib.solvers``      ``fit``, coordinate descent (ALS) and the Bayesian FM (MCMC)
``fmlib.claims``       the paper's equivalences and the polynomial model
``fmlib.family``       higher-order and field-aware FMs, DeepFM
``fmlib.ranking``      BPR on implicit feedback, catalogue scoring, ranking metrics
``fmlib.interop``      scikit-learn estimators, libFM files, the command line
``fmlib.distributed``  training on several processes or machines
=====================  ===================================================================

Every public name is importable from ``fmlib`` itself (``fmlib.fit``,
``fmlib.FactorizationMachine``, ...). Names are loaded on first use (PEP 562), so
``import fmlib`` is quick and loads neither TensorFlow, numba, scikit-learn nor the
distributed code until a name that needs them is used.

Importing ``fmlib`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` when the variable is unset:
TensorFlow's C++ info and warning lines are hidden, its errors are not.
"""

import importlib as _importlib
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fmlib.version import __version__  # noqa: E402

# public name -> the module that defines it (the chapter that explains it is in its docstring)
_EXPORTS = {
    # the model
    "FactorizationMachine": "fmlib.model.fm",
    "pairwise_naive": "fmlib.model.pairwise",
    "pairwise_fast": "fmlib.model.pairwise",
    "l2_loss": "fmlib.model.losses",
    "l2_penalty": "fmlib.model.losses",
    "logistic_loss": "fmlib.model.losses",
    "rendle_figure1": "fmlib.model.toy",
    "rendle_figure1_frame": "fmlib.model.toy",
    "to_sparse_tensor": "fmlib.validation",
    # data
    "PlantedFM": "fmlib.data.synthetic",
    "SyntheticRatings": "fmlib.data.synthetic",
    "make_ratings": "fmlib.data.synthetic",
    "RatingStream": "fmlib.data.stream",
    "stream_ratings": "fmlib.data.stream",
    "MovieLens": "fmlib.data.movielens",
    "MovieLensError": "fmlib.data.movielens",
    "MovieLensTimeout": "fmlib.data.movielens",
    "load_movielens": "fmlib.data.movielens",
    "FeatureEncoder": "fmlib.data.encoding",
    "IndexMap": "fmlib.data.encoding",
    "RelationalDesign": "fmlib.data.design",
    "RelationBlock": "fmlib.data.design",
    "BlockChunks": "fmlib.data.chunks",
    "movielens_design": "fmlib.data.movielens_design",
    "myfm_movielens_design": "fmlib.data.myfm_protocol",
    # learning
    "TrainingDivergedError": "fmlib.learning.divergence",
    "TrainingInterrupted": "fmlib.learning.divergence",
    "evaluate": "fmlib.learning.metrics",
    "train_step": "fmlib.learning.dense",
    "FMLayer": "fmlib.learning.keras_fm",
    "FieldFMLayer": "fmlib.learning.keras_fm",
    "FMModel": "fmlib.learning.keras_fm",
    "build_fm_model": "fmlib.learning.keras_fm",
    # solvers
    "fit": "fmlib.solvers.fit",
    "BayesianFM": "fmlib.solvers.mcmc",
    "VariationalFM": "fmlib.solvers.variational",
    # the paper's claims
    "Poly2Regression": "fmlib.claims.poly2",
    "poly2_expand": "fmlib.claims.poly2",
    **{
        name: "fmlib.claims.mimic"
        for name in (
            "fm_from_fpmc",
            "fm_from_mf",
            "fm_from_pitf",
            "fm_from_svdpp",
            "fpmc_extra_terms",
            "fpmc_features",
            "mf_features",
            "mf_from_fm",
            "pitf_features",
            "svdpp_extra_terms",
            "svdpp_features",
        )
    },
    # the FM family
    **{
        name: "fmlib.family"
        for name in (
            "FieldAwareFMLayer",
            "HigherOrderFMLayer",
            "anova_fast",
            "anova_naive",
            "build_deepfm_model",
            "build_ffm_model",
            "build_higher_order_fm_model",
        )
    },
    # ranking
    **{
        name: "fmlib.ranking"
        for name in (
            "catalogue_scores",
            "fit_bpr",
            "leave_last_out",
            "ranking_metrics",
            "recommend",
        )
    },
    # scikit-learn and libFM
    **{
        name: "fmlib.interop"
        for name in (
            "FMClassifier",
            "FMOrdinalRegressor",
            "FMRegressor",
            "LibFMFormatError",
            "load_libfm",
            "save_libfm",
            "LibFMModelError",
            "load_libfm_model",
            "save_libfm_model",
            "LibFMRelationError",
            "load_libfm_relational",
            "save_libfm_relation",
        )
    },
}
_SUBPACKAGES = (
    "validation",
    "model",
    "data",
    "learning",
    "solvers",
    "claims",
    "family",
    "ranking",
    "interop",
    "distributed",
)

__all__ = sorted([*_EXPORTS, "distributed", "ranking"])


def __getattr__(name: str):
    """Load a public name (or a subpackage) on first use; later uses find it in the module."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBPACKAGES:
        value = _importlib.import_module(f"fmlib.{name}")
    else:
        raise AttributeError(f"module 'fmlib' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBPACKAGES})
