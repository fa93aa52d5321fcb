"""The book as a textbook: a map that covers the table of contents, chapters that open with what
the reader will be able to do and what it builds on and close with a summary and exercises, and
prose that a reader outside the project understands.

These tests read the committed notebooks and ``_toc.yml`` only (no execution, no build).
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
INTRO = TOC["root"]
# Pages that are not lessons: the introduction, the notation, the appendix of measured results
# and the reference pages.
NOT_TEACHING = {
    INTRO,
    "book/notation",
    "book/measured_results",
    "book/api",
    "book/bibliography",
}
SECTIONS = ("Overview", "Prerequisites", "Summary", "Exercises")

# Words that only make sense to the people who built the book: test-harness tags, issue
# numbers, benchmark targets, the machine the chapters happened to run on, verdict prints.
INTERNAL = [
    r"targets? met",
    r"\bnot met\b",
    r"issue #",
    r"(?<![\w/])#\d+\b",
    r"\bnbval\b",
    r"this machine",
    r"two-core",
    r"2-core",
    r"two cores",
    r"original TF2 project",
    r"against the targets",
    r"s to target",
    r"does not beat",
    r"\bbetter on \d+ of \d+ folds\b",
]
# A chapter is cited by {doc}`name` (or {ref}/{eq}), never by its title typed in prose.
TITLE_IN_PROSE = [r'chapter "', r"\bthe chapter on\b", r"\bthe [A-Z][\w+']* chapter\b"]


def toc_files() -> list[str]:
    files = []
    for part in TOC.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def toc_parts() -> list[tuple[str, list[str]]]:
    return [
        (part["caption"], [c["file"] for c in part["chapters"]])
        for part in TOC["parts"]
    ]


def notebook(name: str) -> dict:
    return json.loads((ROOT / f"{name}.ipynb").read_text())


def markdown(name: str) -> list[str]:
    return [
        "".join(cell["source"])
        for cell in notebook(name)["cells"]
        if cell["cell_type"] == "markdown"
    ]


def prose(text: str) -> str:
    """Markdown without fenced code, inline code and roles' targets: what a reader reads."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\{(doc|ref|eq|cite|numref)\}`[^`]*`", " ", text)
    return re.sub(r"`[^`]*`", " ", text)


def teaching_chapters() -> list[str]:
    return [
        f
        for f in toc_files()
        if f not in NOT_TEACHING and (ROOT / f"{f}.ipynb").exists()
    ]


def chapter_titles() -> dict[str, str]:
    titles = {}
    for f in [INTRO, *toc_files()]:
        path = ROOT / f"{f}.ipynb"
        text = markdown(f)[0] if path.exists() else (ROOT / f"{f}.md").read_text()
        titles[f] = re.search(r"^# (.+)$", text, flags=re.M).group(1).strip()
    return titles


def intro_map() -> str:
    text = "\n".join(markdown(INTRO))
    start = text.index("## Map of the book")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_chapter_of_the_toc_is_on_the_intro_map_and_in_its_order():
    book_map = intro_map()
    names = [f.rsplit("/", 1)[-1] for f in toc_files()]
    missing = [n for n in names if f"{{doc}}`{n}`" not in book_map]
    assert not missing, f"chapters in _toc.yml missing from the intro's map: {missing}"
    cited = [n for n in re.findall(r"\{doc\}`([^`]+)`", book_map) if n in names]
    first_seen = list(dict.fromkeys(cited))
    assert first_seen == names, f"the map's order {first_seen} is not the toc's {names}"
    unknown = sorted(set(re.findall(r"\{doc\}`([^`]+)`", book_map)) - set(names))
    assert not unknown, (
        f"the intro's map cites pages that are not in _toc.yml: {unknown}"
    )


def test_every_part_of_the_toc_has_a_paragraph_on_the_map():
    book_map = intro_map()
    for caption, _ in toc_parts():
        assert f"**{caption}.**" in book_map, (
            f"no paragraph for part {caption!r} on the map"
        )


@pytest.mark.parametrize("name", teaching_chapters())
def test_teaching_chapter_has_overview_prerequisites_summary_exercises(name):
    headings = [
        h.strip()
        for cell in markdown(name)
        for h in re.findall(r"^## (.+)$", cell, re.M)
    ]
    missing = [s for s in SECTIONS if s not in headings]
    assert not missing, f"{name}: no section(s) {missing}"
    assert headings[:2] == ["Overview", "Prerequisites"], (
        f"{name}: must open with Overview and Prerequisites; its first sections are {headings[:2]}"
    )
    assert headings[-2:] == ["Summary", "Exercises"], (
        f"{name}: must close with Summary and Exercises; its last sections are {headings[-2:]}"
    )
    prerequisites = "\n".join(markdown(name))
    prerequisites = prerequisites[prerequisites.index("## Prerequisites") :]
    prerequisites = prerequisites[: prerequisites.index("\n## ", 1)]
    assert "{doc}`" in prerequisites or "none" in prerequisites.lower(), (
        f"{name}: the Prerequisites section names no chapter"
    )


@pytest.mark.parametrize("name", [INTRO, *teaching_chapters()])
def test_prose_has_no_project_internal_words(name):
    text = prose("\n".join(markdown(name)))
    found = [
        m.group(0) for pattern in INTERNAL for m in re.finditer(pattern, text, re.I)
    ]
    assert not found, f"{name}: project-internal words in the prose: {found}"


@pytest.mark.parametrize("name", [INTRO, *teaching_chapters()])
def test_printed_outputs_carry_no_verdicts(name):
    outputs = []
    for cell in notebook(name)["cells"]:
        for out in cell.get("outputs", []):
            outputs.append("".join(out.get("text", "")))
            outputs.append("".join(out.get("data", {}).get("text/plain", "")))
    text = "\n".join(outputs)
    found = [
        m.group(0) for pattern in INTERNAL for m in re.finditer(pattern, text, re.I)
    ]
    assert not found, f"{name}: project-internal words printed by a cell: {found}"


@pytest.mark.parametrize("name", [INTRO, *teaching_chapters()])
def test_chapters_are_cited_by_reference_not_by_title(name):
    text = prose("\n".join(markdown(name)))
    found = [
        m.group(0) for pattern in TITLE_IN_PROSE for m in re.finditer(pattern, text)
    ]
    assert not found, (
        f"{name}: a chapter cited by its title instead of {{doc}}: {found}"
    )


def test_chapter_titles_cited_in_the_library_exist():
    """Docstrings cannot use {doc}; when they name a chapter, the name must be a real title."""
    titles = set(chapter_titles().values())
    cited = {}
    for path in sorted((ROOT / "fmlib").rglob("*.py")):
        for title in re.findall(r'chapter "([^"]+)"', path.read_text()):
            title = " ".join(title.split())  # a docstring may wrap a title over lines
            if title not in titles:
                cited.setdefault(title, []).append(str(path.relative_to(ROOT)))
    assert not cited, f"docstrings cite chapters that do not exist: {cited}"


def test_the_notation_page_is_in_the_toc_before_the_first_chapter():
    files = toc_files()
    assert "book/notation" in files
    first_notebook = next(f for f in files if (ROOT / f"{f}.ipynb").exists())
    assert files.index("book/notation") < files.index(first_notebook)
