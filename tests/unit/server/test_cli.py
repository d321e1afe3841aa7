"""`mlzen server users | keys`, and the bind check of `mlzen server up`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlzen.server import auth
from mlzen.server.app import server_stack
from mlzen.store import users
from tests.cli import run_main


@dataclass
class Result:
    exit_code: int
    stdout: str
    output: str


def invoke(*args: str, input: str | None = None) -> Result:  # noqa: A002 (click's name)
    """`mlzen ARGS` through main(), as a shell runs it."""
    code, out, err = run_main(*args, input=input)
    return Result(code, out, out + err)


def _store():
    return server_stack()[1].metadata_store


def test_users_create_list_delete() -> None:
    created = invoke(
        "server", "users", "create", "alice", "--role", "admin", "--password", "long-enough-pw"
    )
    assert created.exit_code == 0, created.output
    prompted = invoke("server", "users", "create", "bob", input="bobs-password\nbobs-password\n")
    assert prompted.exit_code == 0, prompted.output
    assert "bobs-password" not in prompted.output
    listed = json.loads(invoke("server", "users", "list", "--json").output)
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "admin"), ("bob", "viewer")]
    assert "password_hash" not in listed[0]
    assert auth.authenticate_password(_store(), "bob", "bobs-password") is not None
    assert auth.authenticate_password(_store(), "bob", "wrong-password") is None
    again = invoke("server", "users", "create", "alice", "--password", "long-enough-pw")
    assert again.exit_code == 2
    assert "already exists" in again.output
    short = invoke("server", "users", "create", "carol", "--password", "short")
    assert short.exit_code == 2
    assert "too short" in short.output
    deleted = invoke("server", "users", "delete", "bob", "--yes")
    assert deleted.exit_code == 0
    assert [u["name"] for u in users.list_users(_store())] == ["alice"]
    missing = invoke("server", "users", "delete", "nobody", "--yes")
    assert missing.exit_code == 2
    assert "mlzen server users list" in missing.output


def test_set_password_replaces_it_and_ends_the_users_sessions() -> None:
    from mlzen.server import sessions

    invoke("server", "users", "create", "dana", "--password", "first-password")
    user = auth.authenticate_password(_store(), "dana", "first-password")
    assert user is not None
    token, _ = sessions.start(_store(), user.id)
    changed = invoke(
        "server", "users", "set-password", "dana", input="second-password\nsecond-password\n"
    )
    assert changed.exit_code == 0, changed.output
    assert "second-password" not in changed.output
    assert auth.authenticate_password(_store(), "dana", "first-password") is None
    assert auth.authenticate_password(_store(), "dana", "second-password") is not None
    assert sessions.find(_store(), token) is None
    short = invoke("server", "users", "set-password", "dana", "--password", "short")
    assert short.exit_code == 2
    assert "too short" in short.output
    missing = invoke("server", "users", "set-password", "nobody", "--password", "long-enough")
    assert missing.exit_code == 2
    assert "mlzen server users list" in missing.output


def test_keys_are_printed_once_listed_by_prefix_and_revoked() -> None:
    invoke("server", "users", "create", "ci", "--role", "editor", "--password", "ci-password")
    created = invoke("server", "keys", "create", "--user", "ci", "--name", "pipeline")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("mlzen_")
    assert auth.user_from_api_key(_store(), key).name == "ci"
    listed = invoke("server", "keys", "list", "--json")
    assert key not in listed.output
    rows = json.loads(listed.output)
    assert rows[0]["prefix"] == key[: auth.PREFIX_LENGTH]
    assert rows[0]["name"] == "pipeline"
    assert "key_hash" not in rows[0]
    revoked = invoke("server", "keys", "revoke", rows[0]["prefix"])
    assert revoked.exit_code == 0
    assert auth.user_from_api_key(_store(), key) is None
    assert invoke("server", "keys", "revoke", rows[0]["prefix"]).exit_code == 2
    nobody = invoke("server", "keys", "create", "--user", "nobody")
    assert nobody.exit_code == 2


def test_a_public_bind_is_refused_until_an_admin_exists() -> None:
    refused = invoke("server", "up", "--host", "0.0.0.0", "--port", "1")
    assert refused.exit_code == 2
    assert "mlzen server users create NAME --role admin" in refused.output
    from mlzen.server.serve import check_bind, is_loopback

    assert is_loopback("127.0.0.1")
    assert is_loopback("localhost")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    check_bind(_store(), "127.0.0.1")  # loopback needs no admin
    invoke("server", "users", "create", "root", "--role", "admin", "--password", "root-password")
    check_bind(_store(), "0.0.0.0")


def test_status_and_down_without_a_server() -> None:
    assert "No background server" in invoke("server", "status").output
    assert json.loads(invoke("server", "status", "--json").output)["running"] is False
    assert "No background server" in invoke("server", "down").output


def test_a_project_logged_in_to_a_server_must_name_the_store_to_serve(
    monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    key = "mlzen_" + "k" * 43
    monkeypatch.setenv("MLZEN_SERVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MLZEN_API_KEY", key)
    refused = invoke("server", "users", "list")
    assert refused.exit_code == 2
    assert "--store-url" in refused.output
    assert key not in refused.output
    store_url = f"sqlite:///{project / '.mlzen' / 'team.db'}"
    created = invoke(
        "server", "users", "create", "ann", "--password", "ann-password", "--store-url", store_url
    )
    assert created.exit_code == 0, created.output
