"""``mlzen runs``: list, show, logs, resume, delete, explain, config and env of runs."""

from __future__ import annotations

import click

from mlzen.cli.main import LazyGroup

SUBCOMMANDS = {
    "explain": "mlzen.cli.explain:explain",
    "config": "mlzen.cli.reproduce:config",
    "env": "mlzen.cli.reproduce:env",
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS, epilog="Example: mlzen runs list --limit 5")
def runs() -> None:
    """Inspect and manage pipeline runs. RUN is an id, unique id prefix, name or 'latest'."""
