r"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

Each page is opened twice: in a desktop window (1200 px wide, where the theme shows both
sidebars) and on a phone (412 px wide, a large Android phone; the theme hides both sidebars and
the article takes the whole width). Each time: MathJax (served from the build, not a CDN) has
typeset every formula and left no raw TeX delimiters or TeX errors, every image has loaded, the
browser logged no JavaScript errors, the page's <title> and navigation (sidebar, previous/next
links) are plain words (no ``\(``, ``$`` or ``\frac``, and no typeset formula either: tabs and
bookmarks show titles raw), and nothing overflows, also inside the folded exercise solutions,
which are unfolded for that check. "Overflows" means:

- everywhere: the page itself never scrolls sideways (the document is no wider than the window);
- everywhere: no display formula is wider than its box. MathJax's box scrolls or clips its SVG
  without a scrollbar, and a formula a reader must scroll through is not read: long equations
  are broken over lines (``aligned``, ``split``);
- in the desktop window: no code block (``pre``), cell output or table is wider than its box
  either (the 88-column code lines of the project fit);
- on the phone: 88 columns of code cannot fit in 380 px, so a code block, cell output or table
  may be wider than the column if it sits in its own horizontally scrollable box
  (``overflow-x: auto``, as the theme presents code, outputs and tables) that itself fits the
  window; one that is clipped, or that sticks out of the page, fails.

A screenshot of each page, as a reader first sees it, is written to ``_build/screenshots/``
(``<page>.png`` on the desktop, ``<page>-phone.png`` on the phone) for a person to look at.

Needs the built book (``jupyter-book build .``) and the system Chromium (Debian package
``chromium``). Without them the test is skipped with a message, unless FMLIB_REQUIRE_BROWSER=1
(set by CI), in which case it fails.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

WAIT_FOR_MATHJAX = """async () => {
    if (!document.querySelector('.math')) return 'no maths';
    for (let i = 0; i < 200 && !(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise); i++)
        await new Promise(r => setTimeout(r, 50));
    if (!(window.MathJax && window.MathJax.startup)) return 'MathJax did not load';
    await window.MathJax.startup.promise;
    return 'typeset';
}"""

PAGE_FACTS = """() => {
    const formulas = Array.from(document.querySelectorAll('span.math, div.math'));
    const copy = (document.querySelector('main') || document.body).cloneNode(true);
    copy.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml').forEach(e => e.remove());
    const text = copy.innerText;
    return {
        formulas: formulas.length,
        untypeset: formulas.filter(f => !f.querySelector('mjx-container')).length,
        texErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
        rawTeX: ['$$', '\\\\(', '\\\\[', '\\\\begin{'].filter(d => text.includes(d))
            .concat(text.match(/\\\\[a-zA-Z]{2,}/g) || []),
        images: Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 80), i.complete && i.naturalWidth > 0]),
    };
}"""


# Where TeX must not appear: the <title> and the navigation between chapters (the primary sidebar
# and the previous/next links), whose text MathJax may or may not typeset; typeset maths there
# counts too, since the same title is raw in the browser tab. (In-page headings may hold maths.)
TITLE_AND_NAV = """() => {
    const nav = Array.from(document.querySelectorAll('.bd-sidebar-primary, nav.bd-docs-nav, .prev-next-area'));
    return {
        title: document.title,
        nav: nav.map(n => n.textContent).join('\\n'),
        navMaths: nav.reduce((count, n) => count + n.querySelectorAll('mjx-container').length, 0),
    };
}"""
TEX_IN_TITLES = ("\\(", "$", "\\frac")


def _tex_in_title_or_nav(name, places: dict) -> list[str]:
    problems = [
        f"{name}: TeX {d!r} in the page <title>: {places['title']!r}"
        for d in TEX_IN_TITLES
        if d in places["title"]
    ]
    problems += [
        f"{name}: TeX {d!r} in the navigation"
        for d in TEX_IN_TITLES
        if d in places["nav"]
    ]
    if places["navMaths"]:
        problems.append(
            f"{name}: {places['navMaths']} formula(s) typeset in the navigation"
        )
    return problems


# Unfold every collapsed solution (sphinx-togglebutton's `toggle-hidden`, <details>), then list
# what overflows (the rules in the module docstring). `phone` allows a code block, output or
# table wider than its box when the nearest box that scrolls sideways fits the window.
OVERFLOW = """(phone) => {
    document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    const main = document.querySelector('main') || document.body;
    const wide = [];
    const page = document.documentElement.scrollWidth;
    if (page > window.innerWidth + 1)
        wide.push(`the page scrolls sideways: ${page}px wide in a ${window.innerWidth}px window`);
    const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
    const inScrollBox = e => {
        for (let a = e; a && a !== main; a = a.parentElement) {
            if (scrolls(a)) {
                const r = a.getBoundingClientRect();
                return r.left >= -1 && r.right <= window.innerWidth + 1;
            }
        }
        return false;
    };
    const label = e => `${e.tagName.toLowerCase()}.${Array.from(e.classList).slice(0, 2).join('.')}`;
    const where = e => (e.closest('[id]') || {}).id || '';
    const boxes = main.querySelectorAll('pre, div.cell_output, div.cell_output div.output');
    Array.from(boxes)
        .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
        .filter(e => !(phone && inScrollBox(e)))
        .forEach(e => wide.push(`${label(e)} ${e.scrollWidth}px wide in ${e.clientWidth}px`
                                + ` (in #${where(e)}): "${e.innerText.trim().split('\\n')[0].slice(0, 60)}"`));
    // Display maths and tables: MathJax's box may scroll or clip its SVG without a scrollbar the
    // boxes above would see, so compare the typeset formula (or the table) with its container.
    main.querySelectorAll('mjx-container[display="true"], table').forEach(e => {
        const avail = e.parentElement.clientWidth;
        const svgs = Array.from(e.querySelectorAll(':scope > svg'));
        const width = Math.max(e.scrollWidth, e.getBoundingClientRect().width,
                               ...svgs.map(g => g.getBoundingClientRect().width));
        const over = avail > 0 && (width > avail + 1 || e.scrollWidth > e.clientWidth + 1);
        const allowed = phone && e.tagName === 'TABLE' && inScrollBox(e.parentElement);
        if (over && !allowed)
            wide.push(`${e.tagName.toLowerCase()} ${Math.round(width)}px wide in ${avail}px`
                      + ` (in #${where(e)}): "${e.textContent.trim().slice(0, 60)}"`);
    });
    return wide;
}"""

# The two windows every page is opened in (see the module docstring).
VIEWPORTS = {
    "desktop": {"width": 1200, "height": 900},
    "phone": {"width": 412, "height": 915},
}


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in (HTML / "book").glob("*.html"))


def _unavailable() -> str | None:
    if CHROMIUM is None:
        return (
            "Chromium not found: install the Debian/Ubuntu package `chromium` "
            "(apt-get install chromium) to run the browser check"
        )
    if not _pages():
        return (
            "the book is not built: run `jupyter-book build . -W -n --keep-going` first"
        )
    return None


@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_every_page_renders_offline(device):
    reason = _unavailable()
    if reason:
        if os.environ.get("FMLIB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    problems, network = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(offline=True, viewport=VIEWPORTS[device])

        def only_local(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                network.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        # Generous: a full-page screenshot of a long chapter on a loaded two-core machine
        # can take more than playwright's default 30 s.
        context.set_default_timeout(180_000)
        for path in _pages():
            page = context.new_page()
            errors: list[str] = []
            page.on(
                "console",
                lambda m, errors=errors: (
                    errors.append(m.text) if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            status = page.evaluate(WAIT_FOR_MATHJAX)
            facts = page.evaluate(PAGE_FACTS)
            places = page.evaluate(TITLE_AND_NAV)
            suffix = "" if device == "desktop" else f"-{device}"
            page.screenshot(
                path=str(SHOTS / f"{path.stem}{suffix}.png"), full_page=True
            )
            overflowing = page.evaluate(OVERFLOW, device == "phone")
            name = f"{path.relative_to(HTML)} ({device})"
            if status == "MathJax did not load":
                problems.append(f"{name}: MathJax did not load")
            if facts["untypeset"]:
                problems.append(
                    f"{name}: {facts['untypeset']} of {facts['formulas']} formulas not typeset"
                )
            if facts["texErrors"]:
                problems.append(f"{name}: {facts['texErrors']} TeX error(s)")
            if facts["rawTeX"]:
                problems.append(f"{name}: raw TeX left in the text: {facts['rawTeX']}")
            problems += _tex_in_title_or_nav(name, places)
            for src, ok in facts["images"]:
                if not ok:
                    problems.append(f"{name}: image did not load: {src}")
            problems += [f"{name}: overflows: {box}" for box in overflowing]
            problems += [f"{name}: console error: {e}" for e in errors]
            page.close()
        browser.close()
    problems += [f"blocked a network request: {url}" for url in sorted(set(network))]
    assert not problems, "\n".join(problems)
