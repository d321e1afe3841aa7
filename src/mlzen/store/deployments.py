"""Model deployment records: the ``deployments`` table, one row per deployment name.

A name is recorded once and reused: deploying the same name again overwrites its row
(the old service having been stopped first), so the table always says what each name
serves now. Each function here is one transaction; rows come back as plain dicts. All
are store operations (:mod:`mlzen.store.operations`): a project logged in to a team
server records its deployments there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from mlzen.errors import ConfigError
from mlzen.names import check_name
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, utcnow
from mlzen.store.operations import remote_read, remote_write

#: Where local deployments log, under the project root.
DEPLOYMENTS_DIR = (".mlzen", "deployments")
#: The statuses a deployment can have.
STATUSES = ("starting", "running", "stopped", "crashed")
#: The columns a caller may change after a deployment is recorded.
_UPDATABLE = {"status", "url", "pid", "config", "log_path", "model_version_id", "flavor"}


@remote_write(idempotent=True)
def save_deployment(
    store: MetadataStore,
    *,
    name: str,
    model_version_id: str | None,
    flavor: str,
    status: str,
    config: Mapping[str, Any],
    url: str | None = None,
    pid: int | None = None,
    log_path: str | None = None,
) -> dict[str, Any]:
    """Record deployment ``name``, replacing any earlier record of that name.

    Returns:
        The row as stored.

    Raises:
        InvalidNameError: ``name`` cannot be recorded.
        ConfigError: ``log_path`` is not ``.mlzen/deployments/<name>.log``.
    """
    check_name("deployment", name)
    values = {
        "model_version_id": model_version_id,
        "flavor": flavor,
        "status": _checked(status),
        "url": url,
        "pid": pid,
        "config": dict(config),
        "log_path": check_log_path(name, log_path),
    }
    table = t.deployments
    for attempt in range(2):
        now = utcnow()
        try:
            with store.write() as connection:
                found = connection.execute(
                    select(table.c.id).where(table.c.name == name).with_for_update()
                ).first()
                if found is None:
                    connection.execute(
                        insert(table).values(
                            id=new_id(), name=name, created_at=now, updated_at=now, **values
                        )
                    )
                else:
                    connection.execute(
                        update(table)
                        .where(table.c.name == name)
                        .values(created_at=now, updated_at=now, **values)
                    )
            break
        except IntegrityError:
            # Another process inserted the same name between our check and insert;
            # the second attempt finds its row and overwrites it.
            if attempt:
                raise
    row = get_deployment(store, name)
    assert row is not None
    return row


@remote_write(idempotent=True)
def update_deployment(store: MetadataStore, name: str, **values: Any) -> dict[str, Any] | None:
    """Change some columns of deployment ``name``; ``None`` if it is not recorded."""
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"Deployment columns that cannot be updated: {sorted(unknown)}")
    if "status" in values:
        _checked(values["status"])
    if "log_path" in values:
        check_log_path(name, values["log_path"])
    if "config" in values:
        values["config"] = dict(values["config"])
    table = t.deployments
    with store.write() as connection:
        connection.execute(
            update(table).where(table.c.name == name).values(updated_at=utcnow(), **values)
        )
    return get_deployment(store, name)


@remote_read
def get_deployment(store: MetadataStore, name: str) -> dict[str, Any] | None:
    """The record of deployment ``name``, or ``None``."""
    table = t.deployments
    with store.read() as connection:
        row = connection.execute(select(*table.c).where(table.c.name == name)).first()
    return dict(row._mapping) if row is not None else None


@remote_read
def list_deployments(store: MetadataStore) -> list[dict[str, Any]]:
    """Every deployment record, by name."""
    table = t.deployments
    with store.read() as connection:
        rows = connection.execute(select(*table.c).order_by(table.c.name))
        return [dict(row._mapping) for row in rows]


def check_log_path(name: str, log_path: str | None) -> str | None:
    """``log_path`` if it is where a local deployment logs: an absolute
    ``<project>/.mlzen/deployments/<name>.log``, with no ``..``.

    The path is read back by ``mlzen deployments logs`` on whichever machine asks, so a
    record must not point it at any other file.

    Raises:
        ConfigError: It is anything else.
    """
    if log_path is None:
        return None
    path = PurePosixPath(log_path) if isinstance(log_path, str) else None
    if (
        path is None
        or not path.is_absolute()
        or ".." in path.parts
        or "\x00" in log_path
        or path.parts[-3:] != (DEPLOYMENTS_DIR[0], DEPLOYMENTS_DIR[1], f"{name}.log")
    ):
        raise ConfigError(
            f"Deployment '{name}' cannot record the log path {str(log_path)[:200]!r}: a "
            f"deployment logs to <project>/{'/'.join(DEPLOYMENTS_DIR)}/{name}.log. Deploy "
            "it with mlzen, which records that path.",
            deployment=name,
        )
    return log_path


def _checked(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"Deployment status {status!r} is not one of {STATUSES}")
    return status
