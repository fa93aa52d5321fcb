"""fmlib where users already are: scikit-learn estimators, libFM files, a command line.

Chapter "Using fmlib with scikit-learn and libFM files".
"""

from fmlib.interop.libfm_files import LibFMFormatError, load_libfm, save_libfm
from fmlib.interop.sklearn import FMClassifier, FMRegressor

__all__ = [
    "FMClassifier",
    "FMRegressor",
    "LibFMFormatError",
    "load_libfm",
    "save_libfm",
]
