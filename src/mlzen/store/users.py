"""The team server's users, API keys, dashboard sessions and login attempts: reads and
writes of their rows.

Only hashes reach this module: passwords, keys and session tokens are hashed by
``mlzen.server`` before they are stored, and nothing here ever sees them in plain text.
Each write is one transaction through :meth:`MetadataStore.write`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlzen.errors import ConfigError, NotFoundError
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, utcnow

_USER_COLUMNS = [t.users.c.id, t.users.c.name, t.users.c.role, t.users.c.created_at]
_KEY_COLUMNS = [
    t.api_keys.c.id,
    t.api_keys.c.name,
    t.api_keys.c.prefix,
    t.api_keys.c.user_id,
    t.users.c.name.label("user_name"),
    t.api_keys.c.created_at,
    t.api_keys.c.last_used_at,
    t.api_keys.c.revoked_at,
]


def _user_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"No server user named '{name}'. List users with 'mlzen server users list'.",
        user_name=name,
    )


def _user_id(connection: Connection, name: str) -> str:
    user_id = connection.execute(select(t.users.c.id).where(t.users.c.name == name)).scalar()
    if user_id is None:
        raise _user_not_found(name)
    return str(user_id)


def create_user(store: MetadataStore, *, name: str, password_hash: str, role: str) -> str:
    """Record a user; returns its id.

    Raises:
        ConfigError: A user with this name exists.
    """
    user_id = new_id()
    try:
        with store.write() as connection:
            connection.execute(
                insert(t.users).values(
                    id=user_id,
                    name=name,
                    password_hash=password_hash,
                    role=role,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ConfigError(
            f"A server user named '{name}' already exists. Pick another name, or delete it "
            f"first with 'mlzen server users delete {name}'.",
            user_name=name,
        ) from None
    return user_id


def delete_user(store: MetadataStore, name: str) -> None:
    """Delete a user with every API key and session of theirs."""
    with store.write() as connection:
        user_id = _user_id(connection, name)
        connection.execute(delete(t.api_keys).where(t.api_keys.c.user_id == user_id))
        connection.execute(delete(t.server_sessions).where(t.server_sessions.c.user_id == user_id))
        connection.execute(delete(t.users).where(t.users.c.id == user_id))


def list_users(store: MetadataStore) -> list[dict[str, Any]]:
    """Every user (id, name, role, created_at) by name; never the password hash."""
    with store.read() as connection:
        rows = connection.execute(select(*_USER_COLUMNS).order_by(t.users.c.name))
        return [dict(row._mapping) for row in rows]


def count_admins(store: MetadataStore) -> int:
    with store.read() as connection:
        query = select(func.count()).select_from(t.users).where(t.users.c.role == "admin")
        return int(connection.execute(query).scalar() or 0)


def user_row(
    store: MetadataStore, *, name: str | None = None, user_id: str | None = None
) -> dict[str, Any] | None:
    """A user's full row (including ``password_hash``), by name or id."""
    column, value = (t.users.c.name, name) if name is not None else (t.users.c.id, user_id)
    with store.read() as connection:
        row = connection.execute(select(*t.users.c).where(column == value)).first()
    return None if row is None else dict(row._mapping)


def get_user(store: MetadataStore, name: str) -> dict[str, Any]:
    """A user's public row by name."""
    row = user_row(store, name=name)
    if row is None:
        raise _user_not_found(name)
    return {key: row[key] for key in ("id", "name", "role", "created_at")}


def create_api_key(
    store: MetadataStore, *, user_name: str, name: str, prefix: str, key_hash: str
) -> str:
    """Record an API key (its lookup prefix and hash) for ``user_name``; returns its id.

    Raises:
        NotFoundError: No such user.
        IntegrityError: The prefix is taken (the caller draws a new key and retries).
    """
    key_id = new_id()
    with store.write() as connection:
        connection.execute(
            insert(t.api_keys).values(
                id=key_id,
                name=name,
                user_id=_user_id(connection, user_name),
                prefix=prefix,
                key_hash=key_hash,
                created_at=utcnow(),
            )
        )
    return key_id


def list_api_keys(store: MetadataStore, user_name: str | None = None) -> list[dict[str, Any]]:
    """API keys (never their hashes) with their user's name, oldest first."""
    query = select(*_KEY_COLUMNS).join(t.users, t.users.c.id == t.api_keys.c.user_id)
    if user_name is not None:
        query = query.where(t.users.c.name == user_name)
    with store.read() as connection:
        rows = connection.execute(query.order_by(t.api_keys.c.created_at, t.api_keys.c.prefix))
        return [dict(row._mapping) for row in rows]


def revoke_api_key(store: MetadataStore, prefix: str) -> None:
    """Mark the key with this prefix revoked; it stops working at once."""
    with store.write() as connection:
        changed = connection.execute(
            update(t.api_keys)
            .where(t.api_keys.c.prefix == prefix, t.api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if changed.rowcount == 0:
            raise NotFoundError(
                f"No active API key with prefix '{prefix}'. List keys with "
                "'mlzen server keys list'.",
                prefix=prefix,
            )


def key_with_user(store: MetadataStore, prefix: str) -> dict[str, Any] | None:
    """The active key with this prefix joined to its user: key id, key_hash,
    last_used_at, user_id, user_name, role."""
    query = (
        select(
            t.api_keys.c.id,
            t.api_keys.c.key_hash,
            t.api_keys.c.last_used_at,
            t.users.c.id.label("user_id"),
            t.users.c.name.label("user_name"),
            t.users.c.role,
        )
        .join(t.users, t.users.c.id == t.api_keys.c.user_id)
        .where(t.api_keys.c.prefix == prefix, t.api_keys.c.revoked_at.is_(None))
    )
    with store.read() as connection:
        row = connection.execute(query).first()
    return None if row is None else dict(row._mapping)


def touch_api_key(store: MetadataStore, key_id: str, when: datetime) -> None:
    with store.write() as connection:
        connection.execute(
            update(t.api_keys).where(t.api_keys.c.id == key_id).values(last_used_at=when)
        )


# -- dashboard sessions -----------------------------------------------------------------


def create_session(
    store: MetadataStore,
    *,
    session_id: str,
    user_id: str,
    csrf_token: str,
    expires_at: datetime,
) -> None:
    """Record a session (by the hash of its token); sessions already expired are removed."""
    now = utcnow()
    with store.write() as connection:
        connection.execute(delete(t.server_sessions).where(t.server_sessions.c.expires_at <= now))
        connection.execute(
            insert(t.server_sessions).values(
                id=session_id,
                user_id=user_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )


def session_with_user(store: MetadataStore, session_id: str) -> dict[str, Any] | None:
    """The unexpired session ``session_id`` joined to its user: ``csrf_token``,
    ``expires_at``, ``user_id``, ``user_name``, ``role``."""
    query = (
        select(
            t.server_sessions.c.csrf_token,
            t.server_sessions.c.expires_at,
            t.users.c.id.label("user_id"),
            t.users.c.name.label("user_name"),
            t.users.c.role,
        )
        .join(t.users, t.users.c.id == t.server_sessions.c.user_id)
        .where(t.server_sessions.c.id == session_id, t.server_sessions.c.expires_at > utcnow())
    )
    with store.read() as connection:
        row = connection.execute(query).first()
    return None if row is None else dict(row._mapping)


def delete_session(store: MetadataStore, session_id: str) -> None:
    """End one session (log out); ending one that is gone is not an error."""
    with store.write() as connection:
        connection.execute(delete(t.server_sessions).where(t.server_sessions.c.id == session_id))


def set_password_hash(store: MetadataStore, name: str, password_hash: str) -> None:
    """Give user ``name`` a new password hash, ending every session of theirs.

    Raises:
        NotFoundError: No such user.
    """
    with store.write() as connection:
        user_id = _user_id(connection, name)
        connection.execute(
            update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
        )
        connection.execute(delete(t.server_sessions).where(t.server_sessions.c.user_id == user_id))


# -- login throttling --------------------------------------------------------------------


def take_login_attempt(
    store: MetadataStore, limits: dict[str, int], window: timedelta
) -> timedelta | None:
    """Count one login attempt against each key of ``limits`` (key -> attempts allowed
    per ``window``), unless one of them has none left.

    The attempt is counted before the password is checked, so requests sent at once
    cannot all be checked before the first is counted.

    Returns:
        ``None`` when the attempt may go ahead (it is counted); else how long until the
        fullest key's window ends (nothing is counted).
    """
    table = t.login_attempts
    for attempt in range(3):
        now = utcnow()
        try:
            with store.write() as connection:
                rows = {
                    row.key: row
                    for row in connection.execute(
                        select(table).where(table.c.key.in_(list(limits))).with_for_update()
                    )
                }
                wait = timedelta(0)
                for key, limit in limits.items():
                    row = rows.get(key)
                    if row is not None and now < row.window_start + window:
                        if row.attempts >= limit:
                            wait = max(wait, row.window_start + window - now)
                if wait:
                    return wait
                for key in limits:
                    row = rows.get(key)
                    if row is None:
                        connection.execute(
                            insert(table).values(key=key, attempts=1, window_start=now)
                        )
                    elif now >= row.window_start + window:
                        connection.execute(
                            update(table)
                            .where(table.c.key == key)
                            .values(attempts=1, window_start=now)
                        )
                    else:
                        connection.execute(
                            update(table)
                            .where(table.c.key == key)
                            .values(attempts=table.c.attempts + 1)
                        )
                connection.execute(delete(table).where(table.c.window_start < now - window))
            return None
        except IntegrityError:
            # Another server process counted a first attempt for the same key at the same
            # moment: count again, now that its row exists.
            if attempt == 2:
                raise
    return None


def give_back_login_attempt(store: MetadataStore, forget: str, release: str) -> None:
    """After a successful login: forget the attempts counted for key ``forget`` (the user)
    and give one back to key ``release`` (the address)."""
    table = t.login_attempts
    with store.write() as connection:
        connection.execute(delete(table).where(table.c.key == forget))
        connection.execute(
            update(table)
            .where(table.c.key == release, table.c.attempts > 0)
            .values(attempts=table.c.attempts - 1)
        )
