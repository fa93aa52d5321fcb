"""pytest set-up shared by the unit tests and the notebooks run through nbval."""

import functools
import os

import pytest

# Silence TensorFlow's C++ logging before anything imports it (the notebooks set it themselves).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Build matplotlib's font cache once, here, so that no notebook kernel prints
# "Matplotlib is building the font cache" to stderr on a fresh machine (nbval
# would count that as an output the committed notebook does not have).
import matplotlib.font_manager  # noqa: E402,F401

# Chapters that load MovieLens 100k (through fmlib.load_movielens).
MOVIELENS_NOTEBOOKS = {
    "movielens.ipynb",
    "performance.ipynb",
    "keras_interface.ipynb",
    "solvers.ipynb",
    "bayesian.ipynb",
    "relation_blocks.ipynb",
    "ranking.ipynb",
    "ecosystem.ipynb",
    "fm_family.ipynb",
}


def _data_required() -> bool:
    """CI (.ci/run) sets FMLIB_REQUIRE_DATA=1: missing MovieLens data is then a failure, not a skip."""
    return os.environ.get("FMLIB_REQUIRE_DATA") == "1"


@functools.lru_cache(maxsize=1)
def _movielens():
    """``(data, None)`` or ``(None, reason)``: the data from FMLIB_DATA or the cache, else downloaded."""
    import fmlib

    try:
        return fmlib.load_movielens("ml-100k"), None
    except fmlib.MovieLensError as err:
        try:  # another pytest-xdist worker may have finished the same download meanwhile
            return fmlib.load_movielens("ml-100k", download=False), None
        except fmlib.MovieLensError:
            return None, (
                "MovieLens 100k is not available, so the tests and chapters that use it are skipped. "
                "Set FMLIB_DATA to a folder that contains ml-100k/, or run once with network access "
                f"to download it from GroupLens (FMLIB_REQUIRE_DATA=1 makes this a failure). {err}"
            )


@pytest.fixture(scope="session")
def movielens_or_skip():
    """ml-100k, or a skip with one clear message (a failure when FMLIB_REQUIRE_DATA=1)."""
    data, reason = _movielens()
    if data is None:
        if _data_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return data


def pytest_collection_modifyitems(config, items):
    """Skip the MovieLens chapters (nbval items) with the fixture's message when the data is missing."""
    chapters = [item for item in items if item.path.name in MOVIELENS_NOTEBOOKS]
    if not chapters or _data_required():
        return
    _, reason = _movielens()
    if reason is not None:
        for item in chapters:
            item.add_marker(pytest.mark.skip(reason=reason))
