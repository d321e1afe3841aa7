"""The top-level ``mlzen`` group: lazy command loading and error handling.

Commands are imported only when they run (or when help lists them), and command
modules import nothing heavy at module level, so ``mlzen --help`` stays instant.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from mlzen.errors import MlzenError

COMMANDS = {
    "init": "mlzen.cli.project:init",
    "status": "mlzen.cli.project:status",
    "run": "mlzen.cli.run:run",
    "pipelines": "mlzen.cli.pipelines:pipelines",
    "runs": "mlzen.cli.runs:runs",
    "artifacts": "mlzen.cli.artifacts:artifacts",
    "gc": "mlzen.cli.gc:gc",
    "stack": "mlzen.cli.stack:stack",
    "component": "mlzen.cli.component:component",
    "secret": "mlzen.cli.secret:secret",
    "diff": "mlzen.cli.diff:diff",
    "models": "mlzen.cli.models:models",
    "server": "mlzen.cli.server:server",
    "login": "mlzen.cli.login:login",
    "logout": "mlzen.cli.login:logout",
    "deploy": "mlzen.cli.deploy:deploy",
    "deployments": "mlzen.cli.deploy:deployments",
}


class LazyGroup(click.Group):
    """A group whose commands live in other modules, imported by name on demand."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            return command  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: mlzen run examples/quickstart/pipeline.py:training --param C=0.5",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="mlzen", prog_name="mlzen")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mlzen: run, inspect, compare, resume and reproduce ML pipelines."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors exit 2 with one clear line, internal errors exit 1."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="mlzen", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted: nothing was changed.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MlzenError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        else:
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in mlzen. Rerun with --debug for the traceback and report it.",
                err=True,
            )
        sys.exit(1)
