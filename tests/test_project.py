"""The project's own promises: the README's commands and the CI script agree."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", readme)
    assert len(commands) == 2, commands
    build, test = commands
    assert build.endswith("jupyter-book build . -W -n --keep-going")
    assert "pytest" in test and "--nbval" in test and " book" in test
    marker = readme.splitlines().index(
        next(line for line in readme.splitlines() if line.startswith("<!-- test-command")))
    assert readme.splitlines()[marker + 2] == test
    assert "sed -n '3p'" in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in (ROOT / "book").glob("*.ipynb"):
        assert f"book/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"
