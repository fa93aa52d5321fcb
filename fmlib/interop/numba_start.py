"""numba's start-up without the optional modules ``python -m fmlib``'s loops never use.

A short libFM run (30 sgd epochs on MovieLens 100k) spends most of its time before its
first epoch: importing numpy and numba, then numba's first call of a compiled loop, which
sets up its compiler (every typing and lowering registry) even when the loop only comes
from the on-disk cache. Two optional dependencies that numba loads on the way cost more
than the loops' own start: ``scipy.linalg`` (numba asks whether BLAS exists for ``np.dot``;
scipy's import pulls in ``numpy.f2py``), about a third of that first call, and ``cffi``
(numba parses C declarations to support cffi functions), with ``coverage`` at ``import
numba``. The libFM loops (:mod:`fmlib.solvers.libfm`, :mod:`fmlib.interop.libfm_parse`)
use none of them: no BLAS call, no cffi function, and coverage is only ever running if it
is imported already.

:func:`lean_numba` hides those modules from the import system while numba starts, so
numba finds them missing and carries on without them (its documented fallbacks: ``np.dot``
of vectors compiled later in the process loops instead of calling BLAS; cffi functions
cannot be called from compiled code; a ``.numba_config.yaml`` is still read). Modules
already imported stay usable, but a hidden package's submodules not yet imported cannot be
imported inside the block, from any thread, and the garbage collector pauses for the
whole process. numba keeps its decision for the rest of the process, so only ``python -m
fmlib`` uses the block (``main(lean_start=True)`` from :mod:`fmlib.__main__`), for a
process of its own; :func:`fmlib.interop.cli.main` called from Python leaves numba as it
is.

Two costs are the garbage collector's. Starting numba creates about a million objects
(types, templates, registries), all alive to the end; the cyclic collector's passes over
them while they are created are wasted work, so the block pauses it (about a tenth of the
start-up's CPU time). At the process's exit the interpreter's last collections traverse
them all again (about 0.2 s of CPU on MovieLens-sized runs, a quarter of a 30-epoch sgd
run); ``python -m fmlib`` (:mod:`fmlib.__main__`) therefore moves every object alive at
the end to the collector's permanent generation (:func:`gc.freeze`) before it exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import os
import sys

HIDDEN = ("scipy", "cffi", "coverage", "yaml")


class _Hide(importlib.abc.MetaPathFinder):
    """An import finder that answers "no such module" for :data:`HIDDEN` and their
    submodules."""

    def __init__(self):
        # numba reads a ``.numba_config.yaml`` in the working directory with yaml
        self.hidden = [h for h in HIDDEN if h != "yaml" or not _has_numba_config()]

    def find_spec(self, name, path=None, target=None):
        if any(name == h or name.startswith(h + ".") for h in self.hidden):
            raise ModuleNotFoundError(f"{name} is hidden while numba starts", name=name)
        return None


def _has_numba_config() -> bool:
    return os.path.isfile(".numba_config.yaml")


@contextlib.contextmanager
def lean_numba():
    """Inside the block, :data:`HIDDEN` modules cannot be imported (unless they already
    are) and the cyclic garbage collector pauses. Put numba's import and its first
    compiled call inside."""
    finder = _Hide()
    sys.meta_path.insert(0, finder)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        if collecting:
            gc.enable()
