"""Rendering for the CLI: rich tables for people, stable JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (stable keys) instead of a table."
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + "Z"
    return str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON; datetimes as ISO 8601 UTC."""
    click.echo(json.dumps(data, indent=2, default=_default, sort_keys=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table (plain aligned text when stdout is not a terminal)."""
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def console() -> Any:
    """A rich console; wide when output goes to a pipe or file, so rows do not wrap."""
    import sys

    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def styled(word: str, styles: Mapping[str, str]) -> str:
    """``word`` in rich markup, coloured as ``styles`` maps it (white if it does not)."""
    return f"[{styles.get(word, 'white')}]{word}[/]"


def when(value: datetime | None) -> str:
    """A timestamp for people: ``2026-11-27 02:44:32`` (UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"
