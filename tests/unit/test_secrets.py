"""Secrets: Fernet-encrypted at rest, a 0600 key file or MLZEN_SECRETS_KEY, references."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from mlzen.config import load_settings
from mlzen.errors import ConfigError, NotFoundError
from mlzen.secrets import (
    KEY_ENV,
    SecretResolver,
    delete_secret,
    get_secret,
    key_file,
    list_secrets,
    references,
    set_secret,
)
from mlzen.stack_registry import register_component
from mlzen.store import tables
from mlzen.store.metadata import MetadataStore

PLAINTEXT = "correct-horse-battery-staple-4711"


def database_bytes(project: Path) -> bytes:
    """The SQLite store as it is on disk, write-ahead log included."""
    files = sorted((project / ".mlzen").glob("mlzen.db*"))
    assert files
    return b"".join(path.read_bytes() for path in files if path.is_file())


def test_round_trip_and_listing_never_shows_values() -> None:
    assert set_secret("aws", {"key_id": "AKIA1", "secret": PLAINTEXT}) is True
    assert get_secret("aws") == {"key_id": "AKIA1", "secret": PLAINTEXT}
    assert set_secret("aws", {"secret": "rotated"}) is False
    assert get_secret("aws") == {"secret": "rotated"}
    set_secret("pg", {"password": "pw"})

    listed = list_secrets()
    assert [(s["name"], s["keys"]) for s in listed] == [("aws", ["secret"]), ("pg", ["password"])]
    assert "rotated" not in repr(listed) and "pw'" not in repr(listed)
    assert listed[0]["updated_at"] >= listed[0]["created_at"]

    delete_secret("aws")
    assert [s["name"] for s in list_secrets()] == ["pg"]
    with pytest.raises(NotFoundError, match="'aws'"):
        get_secret("aws")
    with pytest.raises(NotFoundError, match="'aws'"):
        delete_secret("aws")


def test_values_are_encrypted_at_rest(project: Path) -> None:
    # The key is a word the schema never uses (users.password_hash holds "password").
    set_secret("db", {"passphrase_4711": PLAINTEXT})
    # A control: a plain value written the same way is visible in the bytes read.
    register_component("artifact_store", "control", "local", {"path": "/plain-control-4711"})
    on_disk = database_bytes(project)
    assert b"/plain-control-4711" in on_disk
    assert PLAINTEXT.encode() not in on_disk
    assert b"passphrase_4711" not in on_disk  # keys are encrypted too


def test_key_file_is_created_on_first_set_with_mode_0600(project: Path) -> None:
    path = key_file(load_settings())
    assert path == project / ".mlzen" / "secrets.key"
    assert list_secrets() == []
    assert not path.exists()  # reading creates nothing
    set_secret("a", {"k": "v"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Fernet(path.read_text().strip().encode())  # a valid key
    key = path.read_text()
    set_secret("b", {"k": "v"})
    assert path.read_text() == key


def test_env_key_wins_and_a_wrong_key_is_a_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    set_secret("aws", {"secret": PLAINTEXT})
    assert not key_file(load_settings()).exists()

    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="Secret 'aws' cannot be decrypted") as caught:
        get_secret("aws")
    assert KEY_ENV in caught.value.message and PLAINTEXT not in caught.value.message
    with pytest.raises(ConfigError, match="another key"):
        list_secrets()

    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match="no secrets key"):
        get_secret("aws")


def test_malformed_env_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match=f"key in {KEY_ENV} is not a valid key"):
        set_secret("a", {"k": "v"})


def test_key_file_readable_by_others_is_refused(project: Path) -> None:
    set_secret("a", {"k": "v"})
    path = key_file(load_settings())
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        get_secret("a")


def test_ciphertext_moved_to_another_secret_is_detected(project: Path) -> None:
    set_secret("a", {"k": "from a"})
    set_secret("b", {"k": "from b"})
    store = MetadataStore(load_settings().store_url)
    rows = {r["name"]: r for r in list_rows(store)}
    with store.write() as connection:
        connection.execute(
            update(tables.secrets)
            .where(tables.secrets.c.name == "b")
            .values(ciphertext=rows["a"]["ciphertext"])
        )
    with pytest.raises(ConfigError, match="tampered"):
        get_secret("b")


def list_rows(store: MetadataStore):
    from mlzen.store import queries

    return queries.list_secret_rows(store)


@pytest.mark.parametrize(
    ("name", "values", "culprit"),
    [
        ("has space", {"k": "v"}, "'has space'"),
        ("a.b", {"k": "v"}, "'a.b'"),
        ("ok", {"bad.key": "v"}, "'bad.key'"),
        ("ok", {}, "at least one value"),
        ("ok", {"k": 1}, "must be a string"),
    ],
)
def test_bad_names_keys_and_values_are_refused(name, values, culprit) -> None:
    with pytest.raises(ConfigError, match=culprit):
        set_secret(name, values)


# -- references ---------------------------------------------------------------------------


def test_references_are_found_in_nested_strings() -> None:
    config = {
        "url": "postgresql://me:{{ secrets.pg.password }}@db/x",
        "nested": {"list": ["{{secrets.aws.key_id}}", 3, None]},
        "plain": "no {{ reference }} here",
    }
    assert references(config) == {("pg", "password"), ("aws", "key_id")}


@pytest.mark.parametrize("text", ["{{ secrets.aws }}", "{{ secrets.a.b.c }}", "{{ secrets. }}"])
def test_malformed_references_are_errors(text) -> None:
    with pytest.raises(ConfigError, match="malformed secret reference"):
        references({"x": text}, "Component orchestrator 'o'")


def test_resolver_replaces_references_and_names_what_is_missing() -> None:
    set_secret("pg", {"password": PLAINTEXT, "user": "me"})
    resolver = SecretResolver()
    resolved = resolver.resolve(
        {"url": "postgresql://{{ secrets.pg.user }}:{{ secrets.pg.password }}@db/x", "n": 2},
        "Component metadata_store 'pg'",
    )
    assert resolved == {"url": f"postgresql://me:{PLAINTEXT}@db/x", "n": 2}

    with pytest.raises(NotFoundError, match="secret 'nope'") as caught:
        resolver.resolve({"x": "{{ secrets.nope.key }}"}, "Component orchestrator 'o'")
    assert "Component orchestrator 'o'" in caught.value.message
    with pytest.raises(NotFoundError, match="key 'pass' of secret 'pg'") as caught:
        resolver.resolve({"x": "{{ secrets.pg.pass }}"}, "Component orchestrator 'o'")
    assert "password, user" in caught.value.message and PLAINTEXT not in caught.value.message


def test_a_referenced_secret_cannot_be_deleted() -> None:
    set_secret("paths", {"dir": "/tmp"})
    register_component("artifact_store", "arts", "local", {"path": "{{ secrets.paths.dir }}/a"})
    with pytest.raises(ConfigError, match="referenced by the artifact_store 'arts'"):
        delete_secret("paths")
    assert get_secret("paths") == {"dir": "/tmp"}


def test_a_secret_reference_is_validated_once_resolved(project) -> None:
    from mlzen.errors import ConfigError
    from mlzen.stack import load_stack
    from mlzen.stack_registry import register_stack

    pytest.importorskip("s3fs")
    set_secret("s3", {"endpoint": "http://127.0.0.1:9", "bad": "not a url"})
    register_component(
        "artifact_store",
        "s3",
        "s3",
        {"path": "s3://bucket/x", "endpoint_url": "{{ secrets.s3.endpoint }}"},
    )
    register_component(
        "artifact_store",
        "broken",
        "s3",
        {"path": "s3://bucket/x", "endpoint_url": "{{ secrets.s3.bad }}"},
    )
    # Other options are still checked at registration.
    with pytest.raises(ConfigError, match="'path'"):
        register_component(
            "artifact_store",
            "worse",
            "s3",
            {"path": "nope", "endpoint_url": "{{ secrets.s3.endpoint }}"},
        )
    register_stack("good", {"orchestrator": "local", "artifact_store": "s3"})
    register_stack("bad", {"orchestrator": "local", "artifact_store": "broken"})
    assert load_stack("good").artifact_store.root.startswith("s3://bucket")
    with pytest.raises(ConfigError, match="endpoint_url"):
        load_stack("bad")
