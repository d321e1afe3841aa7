"""`mlzen init`, `status`, `run` and `pipelines list`, driven like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlzen import Client
from mlzen.cli.main import cli
from tests.cli import invoke
from tests.unit.cli import pipelines_for_cli

TARGET = "tests.unit.cli.pipelines_for_cli:arithmetic"


def mlzen(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlzen", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


def test_init_is_idempotent_and_says_what_it_made(tmp_path: Path) -> None:
    first = invoke("init", str(tmp_path / "new"))
    assert first.exit_code == 0
    assert "created" in first.output and "mlzen.db" in first.output
    assert (tmp_path / "new" / ".mlzen" / "config.yaml").is_file()
    again = invoke("init", str(tmp_path / "new"))
    assert "already initialised" in again.output


def test_run_with_params_and_summary(project: Path) -> None:
    result = invoke("run", TARGET, "--param", "count=4", "-p", "factor=0.5", "-p", "verbose=yes")
    assert result.exit_code == 0, result.output
    assert "summed: completed" in result.output
    assert "run id:" in result.output
    run = Client().get_pipeline_run("latest")
    assert run.parameters == {"count": 4, "factor": 0.5, "verbose": True, "label": "x"}
    assert run.steps["summed"].outputs["total"].load() == 3.0


def test_run_with_config_file_and_no_cache(project: Path) -> None:
    config = project / "run.yaml"
    config.write_text(
        "parameters:\n  count: 2\nsteps:\n  scale:\n    parameters:\n      factor: 3\n"
    )
    assert invoke("run", TARGET, "--config", str(config)).exit_code == 0
    again = invoke("run", TARGET, "--config", str(config), "--no-cache")
    assert again.exit_code == 0
    run = Client().get_pipeline_run("latest")
    assert {s.status for s in run.steps.values()} == {"completed"}
    assert run.steps["summed"].outputs["total"].load() == 3.0


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["-p", "count=many"], "'count'"),
        (["-p", "verbose=perhaps"], "'verbose'"),
        (["-p", "nope=1"], "'nope'"),
        (["-p", "count"], "'count'"),
    ],
)
def test_bad_params_are_one_line_errors_exiting_2(project: Path, args, culprit) -> None:
    result = mlzen("run", TARGET, *args, cwd=Path.cwd())
    assert result.returncode == 2
    assert result.stderr.startswith("Error:") and culprit in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "culprit"),
    [
        ("no_colon", "no_colon"),
        ("missing_file.py:p", "missing_file.py"),
        ("tests.unit.cli.pipelines_for_cli:nothing", "'nothing'"),
        ("no.such.module:p", "no.such.module"),
    ],
)
def test_bad_targets_name_the_problem(project: Path, target, culprit) -> None:
    result = mlzen("run", target, cwd=Path.cwd())
    assert result.returncode == 2
    assert culprit in result.stderr


def test_failed_run_exits_1_and_says_how_to_resume(project: Path) -> None:
    pipelines_for_cli.switch["fail"] = True
    try:
        result = CliRunner().invoke(cli, ["run", TARGET])
    finally:
        pipelines_for_cli.switch["fail"] = False
    assert result.exit_code == 1
    assert "mlzen runs resume" in result.output
    assert Client().get_pipeline_run("latest").status == "failed"


def test_run_from_a_file_in_a_subprocess_prints_plain_lines(project: Path) -> None:
    (project / "flow.py").write_text(
        textwrap.dedent(
            """
            from mlzen import pipeline, step

            @step
            def hello(name: str = "world") -> str:
                return f"hello {name}"

            @pipeline
            def greet(name: str = "world"):
                hello(name=name)
            """
        )
    )
    result = mlzen("run", "flow.py:greet", "-p", "name=cli", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "hello: completed" in result.stdout
    assert Client().get_artifact_version("output").load() == "hello cli"
    listed = mlzen("pipelines", "list", "--json", cwd=project)
    assert json.loads(listed.stdout)[0]["name"] == "greet"
    status = mlzen("status", "--json", cwd=project)
    data = json.loads(status.stdout)
    assert data["runs"] == 1 and data["runs_by_status"] == {"completed": 1}
    assert set(data) >= {"project_root", "stack", "store_url", "artifact_root", "artifacts"}


def test_ctrl_c_stops_the_run_cleanly(project: Path) -> None:
    (project / "sleepy.py").write_text(
        textwrap.dedent(
            """
            import time
            from pathlib import Path
            from mlzen import pipeline, step

            @step
            def first() -> int:
                return 1

            @step
            def nap(x: int) -> int:
                Path("napping").write_text("yes")
                time.sleep(120)
                return x

            @step
            def after(x: int) -> int:
                return x

            @pipeline
            def sleepy():
                after(nap(first()))
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mlzen", "run", "sleepy.py:sleepy"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (project / "napping").exists():
        assert time.monotonic() < deadline, process.stderr.read() if process.poll() else "no start"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Stopped" in stderr
    run = Client().get_pipeline_run("latest")
    assert run.status == "stopped"
    assert run.steps["nap"].status == "stopped"
    assert run.steps["first"].status == "completed"
    assert "after" not in run.steps
    assert Client().list_pipeline_runs(status="running") == []


def test_help_has_a_summary_and_an_example_for_every_command() -> None:
    from mlzen.cli.main import COMMANDS

    top = invoke("--help")
    assert "Example:" in top.output
    for name in COMMANDS:
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert "Example:" in result.output, name
    for group in ("runs", "pipelines", "artifacts"):
        command = cli.get_command(None, group)
        for sub in command.list_commands(None):
            result = invoke(group, sub, "--help")
            assert result.exit_code == 0 and "Example:" in result.output, f"{group} {sub}"


def test_internal_errors_exit_1_and_point_to_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlzen.cli import main as main_module

    def broken(*args, **kwargs):
        raise RuntimeError("kaput")

    monkeypatch.setattr(main_module.cli, "main", broken)
    with pytest.raises(SystemExit) as exited:
        main_module.main(["status"])
    assert exited.value.code == 1


def test_live_view_on_a_terminal_draws_a_table(project: Path) -> None:
    import pty

    (project / "flow.py").write_text(
        "from mlzen import pipeline, step\n\n"
        "@step\ndef hello() -> str:\n    return 'hi'\n\n"
        "@pipeline\ndef greet():\n    hello()\n"
    )
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlzen", "run", "flow.py:greet"],
        cwd=project,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, screen
    assert "step" in screen and "status" in screen and "elapsed" in screen
    assert "hello" in screen and "completed" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences, not plain lines


def test_status_shows_the_active_stack_and_its_stores(project: Path) -> None:
    other = project / "elsewhere"
    invoke(
        "component",
        "register",
        "metadata_store",
        "other",
        "--flavor",
        "sql",
        "--url",
        f"sqlite:///{other}/other.db",
    )
    invoke(
        "component",
        "register",
        "artifact_store",
        "folder",
        "--flavor",
        "local",
        "--path",
        str(other / "artifacts"),
    )
    invoke("stack", "register", "side", "-o", "local", "-a", "folder", "-m", "other")
    invoke("stack", "set", "side")
    data = json.loads(invoke("status", "--json").output)
    assert data["stack"] == "side"
    assert data["store_url"] == f"sqlite:///{other}/other.db"
    assert data["artifact_root"] == str(other / "artifacts")
