"""``mlzen init`` and ``mlzen status``: the project folder and what is in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlzen.cli.output import json_option, print_json, print_table

CONFIG_TEMPLATE = """\
# mlzen project settings. Every key is optional; MLZEN_<KEY> environment variables win.
# store_url: sqlite:///{root}/.mlzen/mlzen.db
# artifact_root: {root}/.mlzen/artifacts
# heartbeat_interval: 5
# lease_seconds: 60
# max_workers: 0
# executor: threads
# progress: 1
# server_url: http://127.0.0.1:8237  (or 'mlzen login'; the key never goes in this file)
"""


@click.command(epilog="Example: mlzen init ./my-project")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create DIRECTORY/.mlzen/ (metadata store, artifacts, config); safe to rerun."""
    from mlzen.config import PROJECT_DIR_NAME, load_settings
    from mlzen.store.metadata import MetadataStore

    root = directory.resolve()
    project_dir = root / PROJECT_DIR_NAME
    made: list[str] = []
    if not project_dir.is_dir():
        project_dir.mkdir(parents=True)
        made.append(str(project_dir))
    config = project_dir / "config.yaml"
    if not config.exists():
        config.write_text(CONFIG_TEMPLATE.format(root=root))
        made.append(str(config))
    settings = load_settings(project_root=root)
    artifacts = Path(settings.artifact_root)
    if "://" not in settings.artifact_root and not artifacts.is_dir():
        artifacts.mkdir(parents=True)
        made.append(str(artifacts))
    database = project_dir / "mlzen.db"
    existed = database.exists()
    MetadataStore(settings.store_url)
    if settings.store_url.startswith("sqlite") and not existed and database.exists():
        made.append(str(database))
    if made:
        click.echo(f"Initialised mlzen project in {root}:")
        for path in made:
            click.echo(f"  created {path}")
    else:
        click.echo(f"mlzen project in {root} already initialised; nothing to do.")


@click.command(epilog="Example: mlzen status --json")
@json_option
def status(as_json: bool) -> None:
    """Show the project root, the active stack, its stores and what they hold."""
    from mlzen.client import Client
    from mlzen.errors import StoreError
    from mlzen.store import queries
    from mlzen.store.metadata import safe_url

    client = Client()
    settings = client.stack.settings
    server = getattr(client.store, "server_url", None)
    login = None
    counts: dict[str, Any] = {"runs_by_status": {}}
    try:
        if server:
            user = client.store.whoami()
            login = f"{server} (logged in as {user['name']}, {user['role']})"
        counts = queries.counts(client.store)
    except StoreError as exc:
        if not server:
            raise
        # Which server the project uses matters most when it does not answer.
        login = f"{server} (not answering: {exc.message})"
    data = {
        "project_root": str(settings.project_root),
        "stack": client.stack.name,
        "server": login,
        "store_url": server or safe_url(client.stack.store_url),
        "artifact_root": str(client.stack.artifact_store.root),
        **counts,
    }
    if as_json:
        print_json(data)
        return
    rows = [
        (key.replace("_", " "), "-" if value is None else value)
        for key, value in data.items()
        if key != "runs_by_status"
    ]
    rows.append(
        (
            "runs by status",
            ", ".join(f"{k}: {v}" for k, v in counts["runs_by_status"].items()) or "-",
        )
    )
    print_table(None, ["", ""], rows)
