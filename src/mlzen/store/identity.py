"""The metadata store's side of the pairing with its artifact stores.

A metadata store has an id of its own (``project_settings['metadata_store_id']``, made on
first use), which an artifact store's identity file names as its owner; and it records
the artifact stores its versions went to (``project_settings['artifact_store:<id>']``,
their root), so each side knows the other (see ``mlzen.artifacts.identity``).

Versions recorded before artifact stores had ids carry none; a store adopts those whose
URI lies inside it when it gets its identity (:func:`legacy_versions`,
:func:`adopt_versions`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from mlzen.errors import ConfigError, StoreError
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, safe_url, utcnow
from mlzen.store.operations import remote_read, remote_write
from mlzen.store.validation import STORE_ID

METADATA_STORE_ID = "metadata_store_id"
ARTIFACT_STORE_PREFIX = "artifact_store:"
#: Legacy versions handed out per call of :func:`legacy_versions`.
PAGE = 1000


def _check_store_id(value: str) -> str:
    if not isinstance(value, str) or not STORE_ID.fullmatch(value):
        raise ConfigError(
            f"{value!r} is not an artifact store id (32 hex digits). Take it from the "
            "store's identity (mlzen.artifacts.identity.store_identity).",
            artifact_store_id=str(value)[:64],
        )
    return value


# Viewers may: any read needs it, and making it once is bookkeeping, not a change.
@remote_write(idempotent=True, role="viewer")
def metadata_store_id(store: MetadataStore) -> str:
    """This metadata store's id, made on first use."""
    table = t.project_settings
    for _ in range(3):
        with store.read() as connection:
            found = connection.execute(
                select(table.c.value).where(table.c.key == METADATA_STORE_ID)
            ).scalar()
        if found is not None:
            return str(found)
        try:
            with store.write() as connection:
                connection.execute(insert(table).values(key=METADATA_STORE_ID, value=new_id()))
        except IntegrityError:
            continue  # another process made it first: read theirs
    raise StoreError(
        f"Could not give the metadata store at '{safe_url(store.url)}' an id. Check that "
        "it is writable.",
        store_url=safe_url(store.url),
    )


@remote_write(idempotent=True)
def register_artifact_store(store: MetadataStore, artifact_store_id: str, root: str) -> bool:
    """Record that versions of this metadata store live in artifact store ``root``.

    Returns:
        Whether it was not recorded before.
    """
    key = ARTIFACT_STORE_PREFIX + _check_store_id(artifact_store_id)
    value = json.dumps({"root": str(root)[:4096], "registered_at": utcnow().isoformat()})
    table = t.project_settings
    try:
        with store.write() as connection:
            if connection.execute(select(table.c.key).where(table.c.key == key)).first():
                return False
            connection.execute(insert(table).values(key=key, value=value))
    except IntegrityError:
        return False  # registered by another process meanwhile
    return True


@remote_read
def artifact_stores(store: MetadataStore) -> dict[str, str]:
    """The artifact stores this metadata store has recorded versions in: id → root."""
    table = t.project_settings
    with store.read() as connection:
        rows = connection.execute(
            select(table.c.key, table.c.value).where(
                table.c.key.startswith(ARTIFACT_STORE_PREFIX, autoescape=True)
            )
        ).all()
    found = {}
    for key, value in rows:
        try:
            found[key.removeprefix(ARTIFACT_STORE_PREFIX)] = str(json.loads(value)["root"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


@remote_read
def legacy_versions(store: MetadataStore, after: str = "") -> list[dict[str, Any]]:
    """Up to :data:`PAGE` versions without an artifact store id (``id``, ``uri``,
    ``content_hash``), by id, those after ``after``."""
    v = t.artifact_versions.c
    query = (
        select(v.id, v.uri, v.content_hash)
        .where(v.artifact_store_id.is_(None), v.id > after)
        .order_by(v.id)
        .limit(PAGE)
    )
    with store.read() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@remote_write(idempotent=True)
def adopt_versions(store: MetadataStore, artifact_store_id: str, version_ids: list[str]) -> int:
    """Record that these versions (which had no store id) live in ``artifact_store_id``.

    Returns:
        How many were adopted (a version another store adopted first is left alone).
    """
    _check_store_id(artifact_store_id)
    ids = [str(i) for i in version_ids][:PAGE]
    if not ids:
        return 0
    v = t.artifact_versions.c
    with store.write() as connection:
        result = connection.execute(
            update(t.artifact_versions)
            .where(v.id.in_(ids), v.artifact_store_id.is_(None))
            .values(artifact_store_id=artifact_store_id)
        )
    return int(result.rowcount or 0)
