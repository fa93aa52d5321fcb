"""Make the HTML book work offline and load without JavaScript errors.

* MathJax is served from the built book instead of a CDN: at the end of an HTML
  build the MathJax 3 browser bundles (``es5/``) shipped by the
  ``django-static-mathjax`` package (installed from requirements.txt; it does not
  need Django) are copied to ``_static/mathjax``, where ``_config.yml`` points
  Sphinx's ``mathjax_path`` (``tex-svg.js``: SVG output, so no web fonts, which
  browsers refuse to load from ``file://``). No copy of MathJax is committed.
* MathJax is loaded on every page, not only on pages that Sphinx finds maths in:
  chapter titles with maths appear in the navigation and the previous/next links of
  every page.
* jupyter-book 1.x registers sphinx-thebe's configuration script twice, which
  makes browsers report "Identifier 'THEBE_JS_URL' has already been declared";
  duplicate script entries are dropped from every page.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def _mathjax_dir() -> Path:
    import mathjax  # the django-static-mathjax distribution

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-svg.js").exists():
        raise RuntimeError(f"tex-svg.js not found in {es5}; reinstall django-static-mathjax")
    return es5


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "tex-svg.js").exists():
        shutil.copytree(_mathjax_dir(), target, dirs_exist_ok=True)


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the two copies differ only in filename None vs "" (both mean an inline script)
        key = (getattr(script, "filename", script) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    _mathjax_dir()  # fail at the start of the build, not the end, if the package is missing
    app.set_html_assets_policy("always")
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=1000)  # after the themes
    return {"parallel_read_safe": True, "parallel_write_safe": True}
