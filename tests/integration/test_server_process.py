"""`mlzen server up --background`, `status` and `down` with a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.integration.services import free_port


def mlzen(*args: str, project: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    return subprocess.run(  # noqa: S603 (our interpreter, fixed arguments)
        [sys.executable, "-m", "mlzen", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_background_server_serves_runs_and_stops(project: Path) -> None:
    port = free_port()
    started = mlzen("server", "up", "--port", str(port), "--background", project=project)
    pid_file = project / ".mlzen" / "server.json"
    record = json.loads(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert started.returncode == 0, started.stderr
        assert record is not None
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        status = json.loads(mlzen("server", "status", "--json", project=project).stdout)
        assert status["running"] is True
        assert status["healthy"] is True
        assert status["pid"] == record["pid"]
        twice = mlzen("server", "up", "--port", str(port), "--background", project=project)
        assert twice.returncode == 2
        assert "already running" in twice.stderr

        # Users and keys made by the CLI work on the running server at once.
        mlzen(
            "server",
            "users",
            "create",
            "ann",
            "--role",
            "editor",
            "--password",
            "ann-password",
            project=project,
        )
        key = mlzen("server", "keys", "create", "--user", "ann", project=project).stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/api/v1/auth/me", headers=headers).json()["name"] == "ann"
        assert httpx.get(f"{url}/api/v1/runs").status_code == 401

        # A key pasted into a URL is refused, and kept out of the access log; so are
        # passwords (in login bodies, which are never logged).
        leaked = httpx.get(f"{url}/api/v1/runs", params={"api_key": key})
        assert leaked.status_code == 401
        login = {"username": "ann", "password": "ann-password"}
        assert httpx.post(f"{url}/api/v1/auth/login", json=login).status_code == 200
        log = Path(record["log"]).read_text()
        assert "ann-password" not in log
        assert "/api/v1/runs" in log
        assert key not in log
        assert key[len("mlzen_") :] not in log
    finally:
        stopped = mlzen("server", "down", project=project)
        if record is not None and psutil.pid_exists(record["pid"]):
            os.kill(record["pid"], signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped the server" in stopped.stdout
    assert not pid_file.exists()
    assert record is not None
    assert not psutil.pid_exists(record["pid"]) or psutil.Process(record["pid"]).status() == (
        psutil.STATUS_ZOMBIE
    )
    assert "No background server" in mlzen("server", "status", project=project).stdout


def test_users_and_keys_manage_the_store_the_background_server_serves(project: Path) -> None:
    """A server started over another store than the project's: `users` and `keys` without
    --store-url manage that store while it runs, so a key made here works there."""
    port = free_port()
    team = project / "team.db"
    started = mlzen(
        "server", "up", "--port", str(port), "--store-url", f"sqlite:///{team}", "--background",
        project=project,
    )  # fmt: skip
    pid_file = project / ".mlzen" / "server.json"
    record = json.loads(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert started.returncode == 0, started.stderr
        assert pid_file.stat().st_mode & 0o777 == 0o600  # the store URL may hold a password
        created = mlzen(
            "server", "users", "create", "ann", "--role", "editor", "--password", "ann-password",
            project=project,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        key = mlzen("server", "keys", "create", "--user", "ann", project=project).stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        me = httpx.get(f"http://127.0.0.1:{port}/api/v1/auth/me", headers=headers)
        assert me.status_code == 200 and me.json()["name"] == "ann"
        listed = mlzen("server", "users", "list", "--json", project=project)
        assert [u["name"] for u in json.loads(listed.stdout)] == ["ann"]
        status = mlzen("server", "status", "--json", project=project).stdout
        assert "store_url" not in json.loads(status) and str(team) not in status
    finally:
        mlzen("server", "down", project=project)
        if record is not None and psutil.pid_exists(record["pid"]):
            os.kill(record["pid"], signal.SIGKILL)
    # Once it is down, they manage the active stack's store again (where ann is not).
    listed = mlzen("server", "users", "list", "--json", project=project)
    assert json.loads(listed.stdout) == []
