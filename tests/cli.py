"""Driving the ``mlzen`` command line from tests, as a user would."""

from __future__ import annotations

from click.testing import CliRunner, Result

from mlzen.cli.main import cli, main


def invoke(*args: str) -> Result:
    """``mlzen ARGS`` through click's runner; an exception in a command fails the test."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_main(*args: str, input: str | None = None) -> tuple[int, str, str]:
    """``mlzen ARGS`` through ``main()``, as a user's shell runs it: (exit code, stdout,
    stderr). ``input`` is what the user types."""
    runner = CliRunner()
    with runner.isolation(input=input) as (stdout, stderr, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, stdout.getvalue().decode(), stderr.getvalue().decode()
