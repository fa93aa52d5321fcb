"""The FM family: higher-order FMs, field-aware FMs and DeepFM (chapter "The FM family").

* :mod:`fmlib.family.higher_order`: the ANOVA kernel (naive, dynamic programme, power
  sums) and :class:`HigherOrderFMLayer` (Rendle 2010 eq. 5; Blondel et al. 2016).
* :mod:`fmlib.family.field_aware`: :class:`FieldAwareFMLayer` (Juan et al. 2016).
* :mod:`fmlib.family.deepfm`: :func:`build_deepfm_model` (Guo et al. 2017).

Each layer is a registered Keras 3 layer with ``get_config``; each builder returns a model
with fmlib's input checks, task and compile defaults.
"""

from fmlib.family._fields import FamilyModel
from fmlib.family.deepfm import FieldEmbedding, PairwiseInteraction, build_deepfm_model
from fmlib.family.field_aware import FieldAwareFMLayer, build_ffm_model
from fmlib.family.higher_order import (
    HigherOrderFMLayer,
    anova_dp,
    anova_fast,
    anova_naive,
    build_higher_order_fm_model,
)

__all__ = [
    "FamilyModel",
    "FieldAwareFMLayer",
    "FieldEmbedding",
    "HigherOrderFMLayer",
    "PairwiseInteraction",
    "anova_dp",
    "anova_fast",
    "anova_naive",
    "build_deepfm_model",
    "build_ffm_model",
    "build_higher_order_fm_model",
]
