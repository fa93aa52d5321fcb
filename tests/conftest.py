import pytest

import fmlib


@pytest.fixture(scope="session")
def movielens():
    """The real ml-100k, from FMLIB_DATA (CI points it at the verified shared copy) or the cache."""
    return fmlib.load_movielens("ml-100k")
