import signal
import sys
from pathlib import Path

import pytest

# The Ctrl-C tests need Python's SIGINT handler in this process and in the processes it
# starts. A shell that starts pytest in the background without job control (`cmd &`,
# `nohup cmd &`) leaves SIGINT ignored, which `_thread.interrupt_main` then respects and
# every child inherits; a handler installed here is reset to the default in each child.
signal.signal(signal.SIGINT, signal.default_int_handler)

# tests/<package>/test_*.py import the shared references (tests/reference.py) by name
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def movielens(movielens_or_skip):
    """The real ml-100k, from FMLIB_DATA (CI points it at the verified shared copy) or the cache.

    Without the data the test is skipped with one message (see the root conftest.py), except
    when FMLIB_REQUIRE_DATA=1 (set by .ci/run): then it fails.
    """
    return movielens_or_skip
