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
        next(
            line for line in readme.splitlines() if line.startswith("<!-- test-command")
        )
    )
    assert readme.splitlines()[marker + 2] == test
    assert "sed -n '3p'" in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in (ROOT / "book").glob("*.ipynb"):
        assert f"book/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


def test_ci_requires_the_movielens_data_and_the_readme_says_where_it_comes_from():
    assert "export FMLIB_REQUIRE_DATA=1" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    before_command = readme[: readme.index("<!-- test-command")]
    assert "FMLIB_DATA" in before_command and "GroupLens" in before_command


def _log_level_after_import(env: dict) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    env["PYTHONPATH"] = str(ROOT)
    code = "import os, fmlib; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_import_fmlib_quiets_tensorflow_only_if_the_user_has_not_chosen():
    assert _log_level_after_import({}) == "2"
    assert _log_level_after_import({"TF_CPP_MIN_LOG_LEVEL": "0"}) == "0"
