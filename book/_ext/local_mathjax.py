"""Serve MathJax from the built book instead of a CDN.

At the end of an HTML build, copy the MathJax 2.7 files shipped by the
``jupyter-server-mathjax`` package (installed from requirements.txt) into
``_static/mathjax``; ``_config.yml`` points Sphinx's ``mathjax_path`` there. No
copy of MathJax is committed to the repository.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def _mathjax_dir() -> Path:
    import jupyter_server_mathjax

    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").exists():
        raise RuntimeError(f"MathJax.js not found in {static}; reinstall jupyter-server-mathjax")
    return static


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(_mathjax_dir(), target, dirs_exist_ok=True)


def setup(app):
    _mathjax_dir()  # fail early, at the start of the build, if the package is missing
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
