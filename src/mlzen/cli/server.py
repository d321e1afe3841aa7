"""``mlzen server``: run the team server (up, down, status) and manage its users and keys.

A server started with ``--background`` runs detached; its pid, URL, log file and the
store it serves are recorded in ``.mlzen/server.json`` (mode 0600: a store URL may hold a
password), which ``down`` and ``status`` read, and which ``users`` and ``keys`` read to
manage that server's store while it runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from mlzen.cli.main import LazyGroup
from mlzen.cli.output import json_option, print_json, print_table, when

PID_FILE = "server.json"
LOG_FILE = "server.log"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

store_url_option = click.option(
    "--store-url",
    envvar="MLZEN_SERVER_STORE_URL",
    help="The metadata store to serve (default: the active stack's).",
)
managed_store_option = click.option(
    "--store-url",
    envvar="MLZEN_SERVER_STORE_URL",
    help="The server's metadata store (default: that of the background server started "
    "here while it runs, else the active stack's).",
)


@click.group(cls=LazyGroup, lazy={}, epilog="Example: mlzen server up --background")
def server() -> None:
    """Run the team server and manage who may use it."""


# -- running -----------------------------------------------------------------------------


def _project_dir() -> Path:
    from mlzen.config import load_settings

    return load_settings().project_dir


def _read_pid_file() -> dict[str, Any] | None:
    path = _project_dir() / PID_FILE
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None


def _is_our_server(pid: int) -> bool:
    """Whether ``pid`` is alive and is an ``mlzen server up`` process."""
    import psutil

    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "mlzen" in command and "server" in command and " up" in command


def _health(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@server.command(epilog="Example: mlzen server up --host 0.0.0.0 --port 8237 --background")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8237, show_default=True, type=click.IntRange(1, 65535))
@store_url_option
@click.option("--artifact-root", help="Where to read artifacts (default: the active stack's).")
@click.option("--background", is_flag=True, help="Run detached; stop it with 'mlzen server down'.")
def up(
    host: str, port: int, store_url: str | None, artifact_root: str | None, background: bool
) -> None:
    """Start the server (REST API, dashboard at /, API docs at /docs)."""
    from mlzen.server.app import create_app
    from mlzen.server.serve import check_bind

    app = create_app(store_url, artifact_root=artifact_root)
    check_bind(app.state.store, host)
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104 (display only)
    url = f"http://{shown}:{port}"
    if background:
        _start_background(host, port, store_url, artifact_root, url)
        return
    from mlzen.server.serve import uvicorn_server

    click.echo(f"mlzen server on http://{host}:{port} (docs: {url}/docs). Ctrl-C stops it.")
    uvicorn_server(app, host, port).run()


def _start_background(
    host: str, port: int, store_url: str | None, artifact_root: str | None, url: str
) -> None:
    from mlzen.errors import ConfigError

    project_dir = _project_dir()
    running = _read_pid_file()
    if running and _is_our_server(running["pid"]):
        raise ConfigError(
            f"A server started here is already running (pid {running['pid']}, "
            f"{running['url']}). Stop it with 'mlzen server down' first.",
            pid=running["pid"],
        )
    command = [sys.executable, "-m", "mlzen", "server", "up", "--host", host, "--port", str(port)]
    if artifact_root:
        command += ["--artifact-root", artifact_root]
    env = dict(os.environ, MLZEN_PROJECT_ROOT=str(project_dir.parent))
    if store_url:
        env["MLZEN_SERVER_STORE_URL"] = store_url  # not on the command line, where ps shows it
    log_path = project_dir / LOG_FILE
    project_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    record = {"pid": process.pid, "url": url, "host": host, "port": port, "log": str(log_path)}
    if store_url:
        record["store_url"] = store_url
    _write_pid_file(project_dir / PID_FILE, record)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            (project_dir / PID_FILE).unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise ConfigError(
                f"The server exited at start (code {process.returncode}). The end of its log "
                f"({log_path}):\n" + "\n".join(tail),
                log=str(log_path),
            )
        if _health(url):
            click.echo(f"mlzen server running in the background on {url} (pid {process.pid}).")
            click.echo(f"Log: {log_path}. Stop it with 'mlzen server down'.")
            return
        time.sleep(0.2)
    raise ConfigError(
        f"The server (pid {process.pid}) did not answer on {url} within {START_TIMEOUT:.0f}s. "
        f"Look at its log ({log_path}); stop it with 'mlzen server down'.",
        pid=process.pid,
    )


def _write_pid_file(path: Path, record: dict[str, Any]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
        file.write(json.dumps(record))


@server.command(epilog="Example: mlzen server down")
def down() -> None:
    """Stop the server started here with --background."""
    record = _read_pid_file()
    pid_path = _project_dir() / PID_FILE
    if record is None:
        click.echo("No background server was started from this project.")
        return
    pid = int(record["pid"])
    if not _is_our_server(pid):
        pid_path.unlink(missing_ok=True)
        click.echo(f"The server (pid {pid}) was no longer running; forgot it.")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _is_our_server(pid):
        time.sleep(0.1)
    if _is_our_server(pid):
        os.kill(pid, signal.SIGKILL)
    pid_path.unlink(missing_ok=True)
    click.echo(f"Stopped the server on {record['url']} (pid {pid}).")


@server.command(epilog="Example: mlzen server status --json")
@json_option
def status(as_json: bool) -> None:
    """Whether the background server started here is running and answering."""
    record = _read_pid_file()
    state: dict[str, Any] = {"running": False, "healthy": False}
    if record is not None:
        state.update({k: v for k, v in record.items() if k != "store_url"})
        state["running"] = _is_our_server(int(record["pid"]))
        state["healthy"] = state["running"] and _health(record["url"])
    if as_json:
        print_json(state)
    elif record is None:
        click.echo("No background server was started from this project.")
    elif not state["running"]:
        click.echo(f"The server started here (pid {record['pid']}) is not running.")
    else:
        health = "healthy" if state["healthy"] else "NOT answering /health"
        click.echo(f"Running on {record['url']} (pid {record['pid']}), {health}.")
        click.echo(f"Log: {record['log']}")


# -- users and keys ----------------------------------------------------------------------


def _store(store_url: str | None) -> Any:
    """The store to manage: ``store_url``, else that of the background server started
    here while it runs (it may serve another store than the active stack's), else the
    active stack's."""
    from mlzen.server.app import server_stack

    if store_url is None:
        running = _read_pid_file()
        if running and running.get("store_url") and _is_our_server(int(running["pid"])):
            store_url = running["store_url"]
    return server_stack(store_url)[1].metadata_store


@server.group(epilog="Example: mlzen server users create alice --role editor")
def users() -> None:
    """Server users: admin (everything), editor (change, delete), viewer (read)."""


@users.command("create", epilog="Example: mlzen server users create alice --role admin")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "editor", "viewer"]),
    default="viewer",
    show_default=True,
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="MLZEN_NEW_USER_PASSWORD",
    help="Asked for when not given (or from MLZEN_NEW_USER_PASSWORD).",
)
@managed_store_option
def create_user(name: str, role: str, password: str, store_url: str | None) -> None:
    """Create a user who logs in to the dashboard with NAME and a password."""
    from mlzen.server.auth import create_user as create

    user = create(_store(store_url), name, password, role)
    click.echo(
        f"Created {user.role} '{user.name}'. Give them a key: mlzen server keys create "
        f"--user {user.name}"
    )


@users.command("list")
@managed_store_option
@json_option
def list_users(store_url: str | None, as_json: bool) -> None:
    """List users and their roles."""
    from mlzen.store import users as rows

    found = rows.list_users(_store(store_url))
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["NAME", "ROLE", "CREATED"],
        [(u["name"], u["role"], when(u["created_at"])) for u in found],
    )


@users.command("set-password", epilog="Example: mlzen server users set-password alice")
@click.argument("name")
@click.option(
    "--password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt=True,
    envvar="MLZEN_NEW_USER_PASSWORD",
    help="Asked for when not given (or from MLZEN_NEW_USER_PASSWORD).",
)
@store_url_option
def set_password(name: str, password: str, store_url: str | None) -> None:
    """Give a user a new password; every dashboard session of theirs ends."""
    from mlzen.server.auth import set_password as change

    change(_store(store_url), name, password)
    click.echo(f"Changed the password of '{name}' and ended their sessions.")


@users.command("delete", epilog="Example: mlzen server users delete alice --yes")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@managed_store_option
def delete_user(name: str, yes: bool, store_url: str | None) -> None:
    """Delete a user with every API key and dashboard session of theirs."""
    from mlzen.store import users as rows

    store = _store(store_url)
    rows.get_user(store, name)
    if not yes:
        click.confirm(f"Delete user '{name}' and their API keys?", abort=True)
    rows.delete_user(store, name)
    click.echo(f"Deleted user '{name}' and their API keys.")


@server.group(epilog="Example: mlzen server keys create --user alice --name ci")
def keys() -> None:
    """API keys for clients and CI (sent as 'Authorization: Bearer <key>')."""


@keys.command("create", epilog="Example: mlzen server keys create --user alice --name laptop")
@click.option("--user", "user_name", required=True, help="Whose key it is.")
@click.option("--name", default="default", show_default=True, help="What the key is for.")
@managed_store_option
def create_key(user_name: str, name: str, store_url: str | None) -> None:
    """Create an API key. It is printed once, here, and never stored in plain text."""
    from mlzen.server.auth import PREFIX_LENGTH, create_api_key

    key = create_api_key(_store(store_url), user_name, name)
    click.echo(key)
    click.echo(
        f"API key '{name}' for {user_name} (prefix {key[:PREFIX_LENGTH]}). Copy it now: it "
        "is not shown again. Use it with: mlzen login URL --api-key <key>",
        err=True,
    )


@keys.command("list")
@click.option("--user", "user_name", help="Only this user's keys.")
@managed_store_option
@json_option
def list_keys(user_name: str | None, store_url: str | None, as_json: bool) -> None:
    """List API keys by prefix (the keys themselves are not stored)."""
    from mlzen.store import users as rows

    found = rows.list_api_keys(_store(store_url), user_name)
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["PREFIX", "NAME", "USER", "CREATED", "LAST USED", "REVOKED"],
        [
            (
                k["prefix"],
                k["name"],
                k["user_name"],
                when(k["created_at"]),
                when(k["last_used_at"]),
                when(k["revoked_at"]),
            )
            for k in found
        ],
    )


@keys.command("revoke", epilog="Example: mlzen server keys revoke mlzen_AbC123xy")
@click.argument("prefix")
@managed_store_option
def revoke_key(prefix: str, store_url: str | None) -> None:
    """Revoke the API key whose prefix is PREFIX; it stops working at once."""
    from mlzen.store import users as rows

    rows.revoke_api_key(_store(store_url), prefix)
    click.echo(f"Revoked API key {prefix}.")
