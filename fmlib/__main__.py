"""``python -m fmlib``: the libFM-style command line (:mod:`fmlib.interop.cli`)."""

import sys

from fmlib.interop.cli import main

if __name__ == "__main__":
    sys.exit(main())
