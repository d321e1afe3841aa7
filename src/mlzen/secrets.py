"""Secrets: named sets of key/value pairs, stored encrypted in the metadata store.

Each secret is one Fernet token (AES-128-CBC with an HMAC-SHA256, from ``cryptography``)
in the project's metadata store, so the database never holds a value in plain text. The
key comes from ``MLZEN_SECRETS_KEY`` or, when that is unset, from the key file
``<project>/.mlzen/secrets.key``, created with mode 0600 when the first secret is set.
Everyone who shares a metadata store (e.g. PostgreSQL) must share the key: set
``MLZEN_SECRETS_KEY`` to the file's content on the other machines.

Component configs reference a value as ``{{ secrets.NAME.key }}`` inside a string; the
reference is stored as written and resolved when a stack is loaded::

    mlzen secret set aws access_key_id=AKIA... secret_access_key
    mlzen component register artifact_store s3 --flavor s3 --bucket data \\
        --key '{{ secrets.aws.access_key_id }}' --secret '{{ secrets.aws.secret_access_key }}'
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.config import Settings, load_settings
from mlzen.errors import ConfigError, NotFoundError
from mlzen.store import queries, registry
from mlzen.store.metadata import MetadataStore

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_ENV = "MLZEN_SECRETS_KEY"
KEY_FILE = "secrets.key"
NAME = re.compile(r"[A-Za-z0-9_-]+")
# Loose on purpose: anything that starts like a reference is checked, so that a typo
# ("{{ secrets.aws }}") is an error rather than a literal string sent to a service.
REFERENCE = re.compile(r"\{\{\s*secrets\.(.*?)\s*\}\}")
NEW_KEY_HINT = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def _check_name(what: str, value: str) -> None:
    if not NAME.fullmatch(value):
        raise ConfigError(
            f"Secret {what} '{value}' is not allowed: use letters, digits, '_' and '-' only.",
            secret=value,
        )


def _store(settings: Settings | None) -> tuple[Settings, MetadataStore]:
    settings = settings or load_settings()
    return settings, MetadataStore(settings.store_url)


# -- the key ------------------------------------------------------------------------------


def key_file(settings: Settings) -> Path:
    """Where the key lives when ``MLZEN_SECRETS_KEY`` is unset."""
    return settings.project_dir / KEY_FILE


def _key_source(settings: Settings) -> str:
    return KEY_ENV if os.environ.get(KEY_ENV) else str(key_file(settings))


def _fernet(settings: Settings, *, create: bool) -> Fernet:
    """The cipher; with ``create``, a missing key file is made (mode 0600)."""
    from cryptography.fernet import Fernet

    raw = os.environ.get(KEY_ENV)
    source = KEY_ENV
    if not raw:
        path = key_file(settings)
        source = str(path)
        raw = _read_key_file(path) if path.exists() or not create else _create_key_file(path)
    try:
        return Fernet(raw.strip().encode())
    except ValueError:
        raise ConfigError(
            f"The secrets key in {source} is not a valid key: it must be 32 url-safe "
            f"base64-encoded bytes. Make one with {NEW_KEY_HINT}.",
            key_source=source,
        ) from None


def _read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"There is no secrets key: {KEY_ENV} is unset and {path} does not exist. Set "
            f"{KEY_ENV} to the key the secrets were stored with, or restore that file.",
            key_source=str(path),
        ) from None
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(
            f"The secrets key file {path} can be read by other users (mode "
            f"{stat.S_IMODE(mode):04o}). Restrict it with: chmod 600 {path}",
            key_source=str(path),
        )
    return path.read_text()


def _create_key_file(path: Path) -> str:
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    try:
        # O_EXCL: two processes setting their first secret at once agree on one key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def _decrypt(settings: Settings, fernet: Fernet, row: Mapping[str, Any]) -> dict[str, str]:
    from cryptography.fernet import InvalidToken

    name = row["name"]
    try:
        payload = json.loads(fernet.decrypt(row["ciphertext"].encode()))
    except InvalidToken:
        source = _key_source(settings)
        raise ConfigError(
            f"Secret '{name}' cannot be decrypted with the key from {source}: it was "
            f"stored with another key. Use that key ({KEY_ENV} or {key_file(settings)}), "
            f"or set the secret again with 'mlzen secret set {name} ...'.",
            secret=name,
            key_source=source,
        ) from None
    # The name is sealed in with the values, so a token copied onto another row is caught.
    if payload.get("name") != name:
        raise ConfigError(
            f"Secret '{name}' holds the ciphertext of another secret: the database was "
            f"tampered with. Set it again with 'mlzen secret set {name} ...'.",
            secret=name,
        )
    return dict(payload["values"])


# -- the API ------------------------------------------------------------------------------


def set_secret(name: str, values: Mapping[str, str], *, settings: Settings | None = None) -> bool:
    """Store ``values`` (key → string) encrypted as secret ``name``, replacing it if it
    exists. Creates the key file on first use. Returns whether the secret is new."""
    _check_name("name", name)
    if not values:
        raise ConfigError(
            f"Secret '{name}' needs at least one value: KEY=VALUE.",
            secret=name,
        )
    for key, value in values.items():
        _check_name("key", key)
        if not isinstance(value, str):
            raise ConfigError(
                f"Value of key '{key}' of secret '{name}' must be a string, not "
                f"{type(value).__name__}.",
                secret=name,
                key=key,
            )
    settings, store = _store(settings)
    fernet = _fernet(settings, create=True)
    payload = json.dumps({"name": name, "values": dict(values)}).encode()
    return registry.save_secret(store, name, fernet.encrypt(payload).decode())


def get_secret(name: str, *, settings: Settings | None = None) -> dict[str, str]:
    """The decrypted values of secret ``name``.

    Raises:
        NotFoundError: No such secret.
        ConfigError: The key is missing or is not the one it was stored with.
    """
    settings, store = _store(settings)
    row = queries.get_secret_row(store, name)
    if row is None:
        raise registry.secret_not_found(name)
    return _decrypt(settings, _fernet(settings, create=False), row)


def list_secrets(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every secret's name, keys and times; never a value."""
    settings, store = _store(settings)
    rows = queries.list_secret_rows(store)
    if not rows:
        return []
    fernet = _fernet(settings, create=False)
    return [
        {
            "name": row["name"],
            "keys": sorted(_decrypt(settings, fernet, row)),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
        for row in rows
    ]


def delete_secret(name: str, *, settings: Settings | None = None) -> None:
    """Delete secret ``name``; refused while a component config references it."""
    _, store = _store(settings)
    registry.delete_secret(
        store, name, lambda config: any(ref[0] == name for ref in references(config))
    )


# -- references ---------------------------------------------------------------------------


def _parse(inner: str, where: str) -> tuple[str, str]:
    parts = inner.split(".")
    if len(parts) != 2 or not all(NAME.fullmatch(part) for part in parts):
        raise ConfigError(
            f"{where} has a malformed secret reference '{{{{ secrets.{inner} }}}}'. Write it "
            "as '{{ secrets.NAME.key }}'.",
            reference=inner,
        )
    return parts[0], parts[1]


def references(value: Any, where: str = "The config") -> set[tuple[str, str]]:
    """Every ``(secret name, key)`` referenced in the strings of ``value`` (nested)."""
    if isinstance(value, str):
        return {_parse(inner, where) for inner in REFERENCE.findall(value)}
    if isinstance(value, Mapping):
        return set().union(*(references(v, where) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(references(v, where) for v in value))
    return set()


class SecretResolver:
    """Replaces ``{{ secrets.NAME.key }}`` references with values, decrypting each
    secret once."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings, self._store = _store(settings)
        self._secrets: dict[str, dict[str, str]] = {}

    def _value(self, name: str, key: str, where: str) -> str:
        values = self._secrets.get(name)
        if values is None:
            row = queries.get_secret_row(self._store, name)
            if row is None:
                raise NotFoundError(
                    f"{where} references secret '{name}', which does not exist. Create it "
                    f"with 'mlzen secret set {name} {key}=...'.",
                    secret=name,
                    key=key,
                )
            values = _decrypt(self.settings, _fernet(self.settings, create=False), row)
            self._secrets[name] = values
        if key not in values:
            raise NotFoundError(
                f"{where} references key '{key}' of secret '{name}', which has no such key "
                f"(its keys: {', '.join(sorted(values))}). Add it with "
                f"'mlzen secret set {name} ...' (give every key), or fix the reference.",
                secret=name,
                key=key,
            )
        return values[key]

    def resolve(self, value: Any, where: str) -> Any:
        """``value`` with every reference in its strings replaced (a copy).

        Args:
            where: How messages name the config, e.g. ``Component artifact_store 's3'``.
        """
        if isinstance(value, str):

            def substitute(match: re.Match[str]) -> str:
                return self._value(*_parse(match.group(1), where), where)

            return REFERENCE.sub(substitute, value)
        if isinstance(value, Mapping):
            return {k: self.resolve(v, where) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v, where) for v in value]
        return value
