"""The README's examples run as written: every Python block of "Using fmlib in your own
code" in order, in one interpreter, then its command line, in a temporary folder."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_blocks() -> tuple[list[str], list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[
        text.index("## Using `fmlib` in your own code") : text.index(
            "### How the library is laid out"
        )
    ]
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    shell = re.findall(r"```bash\n(.*?)```", section, re.S)
    return python, shell


def test_readme_has_examples():
    python, shell = readme_blocks()
    assert len(python) >= 6 and len(shell) == 1


def test_readme_examples_run_as_written(tmp_path, movielens):
    python, shell = readme_blocks()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"}
    script = tmp_path / "readme.py"
    script.write_text("\n".join(python))
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Bayesian FM, test RMSE" in run.stdout
    rmse = float(re.search(r"Bayesian FM, test RMSE (\d\.\d+)", run.stdout).group(1))
    assert 0.85 < rmse < 0.95  # MovieLens u1 with side features: about 0.9
    command = shell[0].replace("\\\n", " ").split("#")[0].strip()
    assert command.startswith("python -m fmlib ")
    command = command.replace("python", sys.executable, 1)
    cli = subprocess.run(
        command,
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    predictions = (tmp_path / "pred.txt").read_text().split()
    assert len(predictions) == 20000  # one per rating of u1.test
    assert "#Iter" in cli.stdout  # progress lines as the iterations run
