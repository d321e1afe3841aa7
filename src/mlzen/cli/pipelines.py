"""``mlzen pipelines``: the pipelines the store knows."""

from __future__ import annotations

import click

from mlzen.cli.output import json_option, print_json, print_table, when


@click.group(epilog="Example: mlzen pipelines list --json")
def pipelines() -> None:
    """List the pipelines that have run in this project."""


@pipelines.command("list", epilog="Example: mlzen pipelines list")
@json_option
def list_pipelines(as_json: bool) -> None:
    """List pipelines with their run counts, newest first."""
    from mlzen.client import Client

    rows = Client().list_pipelines()
    if as_json:
        print_json(
            [
                {
                    "id": r["id"],
                    "name": r["name"],
                    "created_at": r["created_at"],
                    "run_count": r["run_count"],
                }
                for r in rows
            ]
        )
        return
    print_table(
        None,
        ["name", "runs", "created"],
        [(r["name"], r["run_count"], when(r["created_at"])) for r in rows],
    )
