"""``python -m fmlib``: the libFM-style command line (:mod:`fmlib.interop.cli`)."""

import gc
import sys

from fmlib.interop.cli import main


def run() -> int:
    """:func:`fmlib.interop.cli.main` with numba's lean start (this process is the
    command's own), then :func:`gc.freeze` so that the interpreter's
    last collections skip every object alive at the end (numba's: about 0.2 s of CPU,
    :mod:`fmlib.interop.numba_start`)."""
    code = main(lean_start=True)
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
