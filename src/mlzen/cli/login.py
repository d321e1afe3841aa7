"""``mlzen login`` and ``mlzen logout``: record this project's runs on a team server.

``mlzen login URL --api-key KEY`` checks the key with the server, then keeps the URL and
the key in ``.mlzen/credentials.yaml`` (mode 0600, never printed). From then on the
project's runs, the Client and the CLI use the server's metadata store; artifacts still
go to the stack's artifact store. ``mlzen logout`` deletes the file: the project records
to its own store again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlzen.config import Settings

ENV_VARIABLES = ("MLZEN_SERVER_URL", "MLZEN_API_KEY")


def credentials_path(settings: Settings) -> Path:
    from mlzen.config import CREDENTIALS_FILE

    return settings.project_dir / CREDENTIALS_FILE


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _keep_out_of_git(path: Path) -> None:
    """List the credentials file in the project folder's .gitignore, so that committing
    the project (or its config.yaml) never commits the key."""
    ignore = path.parent / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if path.name not in lines:
        ignore.write_text("\n".join([*lines, path.name]) + "\n")


@click.command(epilog="Example: mlzen login http://127.0.0.1:8237 --api-key mlzen_...")
@click.argument("url")
@click.option(
    "--api-key",
    prompt="API key",
    hide_input=True,
    help="A key from 'mlzen server keys create' (asked for when not given).",
)
def login(url: str, api_key: str) -> None:
    """Record this project's runs on the mlzen server at URL, with an API key."""
    import yaml

    from mlzen.config import load_settings
    from mlzen.errors import ConfigError
    from mlzen.store import queries
    from mlzen.store.remote import RemoteMetadataStore, check_server_url

    server = check_server_url(url)
    settings = load_settings()
    if not settings.project_dir.is_dir():
        raise ConfigError(
            f"{settings.project_root} is not an mlzen project. Run 'mlzen init' first, or "
            "log in from the project's folder.",
            path=str(settings.project_root),
        )
    api_key = api_key.strip()
    store = RemoteMetadataStore(server, api_key, retry_delays=())
    user = store.whoami()
    queries.counts(store)  # the server serves the store operations this client calls
    path = credentials_path(settings)
    _write_private(path, yaml.safe_dump({"server_url": server, "api_key": api_key}))
    _keep_out_of_git(path)
    click.echo(f"Logged in to {server} as {user['name']} ({user['role']}).")
    click.echo("This project's runs are now recorded there; 'mlzen logout' undoes it.")
    if user["role"] == "viewer":
        click.echo(
            "Note: a viewer key can read runs but not record them. Ask an admin for an "
            "editor key to run pipelines.",
            err=True,
        )
    for name in ENV_VARIABLES:
        if os.environ.get(name):
            click.echo(f"Note: {name} is set and wins over this login.", err=True)
    _note_local_artifacts()


def _note_local_artifacts() -> None:
    """Say so when the active stack keeps artifacts where only this machine reads them."""
    from mlzen.errors import MlzenError
    from mlzen.stack import active_stack

    try:
        root = str(active_stack().artifact_store.root)
    except MlzenError:
        return  # a stack that does not load says so when it is used
    if "://" not in root or root.startswith(("file://", "local://")):
        click.echo(
            f"Note: artifacts are still saved in {root}, on this machine. For the server's "
            "dashboard and your teammates to open them, use an artifact store they reach "
            "too (e.g. S3; see 'mlzen stack register').",
            err=True,
        )


@click.command(epilog="Example: mlzen logout")
def logout() -> None:
    """Forget the server login: this project records to its own store again."""
    from mlzen.config import load_settings
    from mlzen.store.metadata import safe_url

    settings = load_settings()
    path = credentials_path(settings)
    if path.exists():
        from mlzen.errors import ConfigError
        from mlzen.yaml_files import read_yaml

        try:
            found = read_yaml(path, what=str(path), fix="") or {}
        except ConfigError:
            found = {}
        server = found.get("server_url") if isinstance(found, dict) else None
        server = server or "the server"
        path.unlink()
        click.echo(f"Logged out of {server}.")
    else:
        click.echo("Not logged in to a server; nothing to do.")
    if os.environ.get("MLZEN_SERVER_URL"):
        click.echo(
            "Note: MLZEN_SERVER_URL is still set, so runs still go to "
            f"{os.environ['MLZEN_SERVER_URL']}. Unset it to use the local store.",
            err=True,
        )
    else:
        local = load_settings().store_url
        click.echo(f"Runs are recorded in {safe_url(local)}.")
