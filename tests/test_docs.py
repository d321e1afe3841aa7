"""Every Python example in README.md runs, in order, in a fresh project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_examples_run(project: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    script = project / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=project,
        env={**os.environ, "MLZEN_PROJECT_ROOT": str(project)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "completed 19.75"
    assert "'cached'" in lines[2] and "completed" not in lines[2]
    assert "{'test_size': 0.2, 'C': 2.0} {'test_size': 0.5}" in result.stdout
    assert "[('C', 0.5, 2.0)]" in lines  # compare_runs: the parameter that changed
    assert "json True" in lines  # compare: identical content of two versions of 'raw'
    assert "completed ConnectionError: chat server unreachable" in lines  # a hook's error
    assert "histograms png b'\\x89PNG'" in lines  # visualizations of a DataFrame
    assert "preview html b'<!DO'" in lines
    # models: the better second version took production from the first
    assert "2 production ['metrics', 'model', 'raw', 'test', 'train']" in lines


def test_quickstart_example_runs(project: Path) -> None:
    example = Path(__file__).parents[1] / "examples" / "quickstart" / "pipeline.py"
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert "metrics: {'accuracy':" in result.stdout
