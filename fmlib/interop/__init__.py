"""fmlib where users already are: scikit-learn estimators, libFM files, a command line.

Chapter "Using fmlib with scikit-learn and libFM files". Names load on first use (PEP 562),
so the command line (:mod:`fmlib.interop.cli`) starts without scikit-learn or TensorFlow.
"""

import importlib as _importlib

_EXPORTS = {
    "FMClassifier": "fmlib.interop.sklearn",
    "FMRegressor": "fmlib.interop.sklearn",
    "FMOrdinalRegressor": "fmlib.interop.sklearn",
    "LibFMFormatError": "fmlib.interop.libfm_files",
    "load_libfm": "fmlib.interop.libfm_files",
    "save_libfm": "fmlib.interop.libfm_files",
    "LibFMModelError": "fmlib.interop.libfm_model",
    "load_libfm_model": "fmlib.interop.libfm_model",
    "save_libfm_model": "fmlib.interop.libfm_model",
    "LibFMRelationError": "fmlib.interop.libfm_relations",
    "load_libfm_relational": "fmlib.interop.libfm_relations",
    "save_libfm_relation": "fmlib.interop.libfm_relations",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a public name on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fmlib.interop' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
