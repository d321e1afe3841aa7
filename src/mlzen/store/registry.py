"""Writes to the stack registry: components, stacks, secrets and project settings.

The registry lives in the project's own metadata store (``Settings.store_url``), even
for a stack that records its runs elsewhere. Sessions come from ``MetadataStore``; each
function here is one write transaction, and the checks that keep the registry whole
(a stack's components exist, a component in use is not deleted) run inside it, with the
rows they depend on locked, so two processes cannot slip between check and write.
Reads are in :mod:`mlzen.store.queries`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlzen.errors import ConfigError, NotFoundError
from mlzen.names import check_name
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, utcnow

ACTIVE_STACK = "active_stack"


def save_component(
    store: MetadataStore,
    *,
    kind: str,
    name: str,
    flavor: str,
    config: Mapping[str, Any],
    replace: bool = False,
) -> None:
    """Record a component; with ``replace``, overwrite one of the same kind and name."""
    check_name("component", name)
    table = t.stack_components
    where = (table.c.kind == kind) & (table.c.name == name)
    try:
        with store.write() as connection:
            found = connection.execute(select(table.c.id).where(where).with_for_update())
            if found.first() is None:
                connection.execute(
                    insert(table).values(
                        id=new_id(),
                        kind=kind,
                        name=name,
                        flavor=flavor,
                        config=dict(config),
                        created_at=utcnow(),
                    )
                )
            elif replace:
                connection.execute(
                    update(table).where(where).values(flavor=flavor, config=dict(config))
                )
            else:
                raise _exists_error(kind, name)
    except IntegrityError:
        raise _exists_error(kind, name) from None


def _exists_error(kind: str, name: str) -> ConfigError:
    return ConfigError(
        f"A {kind} component named '{name}' is already registered. Pick another name, or "
        "pass replace=True to overwrite it.",
        kind=kind,
        component=name,
        already_registered=True,
    )


def delete_component(store: MetadataStore, kind: str, name: str) -> None:
    """Delete a component that no stack uses.

    Raises:
        NotFoundError: No such component.
        ConfigError: A stack uses it; names the stack.
    """
    table = t.stack_components
    where = (table.c.kind == kind) & (table.c.name == name)
    with store.write() as connection:
        if connection.execute(select(table.c.id).where(where).with_for_update()).first() is None:
            raise component_not_found(kind, name)
        users = _stacks_using(connection, lambda components: components.get(kind) == name)
        if users:
            raise ConfigError(
                f"The {kind} component '{name}' is used by stack '{users[0]}'"
                + (f" (and {', '.join(repr(u) for u in users[1:])})" if users[1:] else "")
                + f". Delete the stack first (mlzen stack delete {users[0]}), or register it "
                "again without this component.",
                kind=kind,
                component=name,
                stack=users[0],
            )
        connection.execute(delete(table).where(where))


def component_not_found(kind: str, name: str) -> NotFoundError:
    return NotFoundError(
        f"No {kind} component named '{name}'. List them with 'mlzen component list {kind}', "
        f"or register it with 'mlzen component register {kind} {name} --flavor ...'.",
        kind=kind,
        component=name,
    )


def _stacks_using(connection: Connection, uses: Callable[[dict[str, str]], bool]) -> list[str]:
    rows = connection.execute(select(t.stacks.c.name, t.stacks.c.components))
    return sorted(name for name, components in rows if uses(components or {}))


def save_stack(
    store: MetadataStore,
    name: str,
    components: Mapping[str, str],
    *,
    replace: bool = False,
) -> None:
    """Record a stack of registered components ({kind: component name}).

    Raises:
        NotFoundError: A component that is not registered; names it.
        ConfigError: A stack of that name exists and ``replace`` is false.
    """
    check_name("stack", name)
    table = t.stacks
    try:
        with store.write() as connection:
            for kind, component in sorted(components.items()):
                c = t.stack_components.c
                # Locked, so that a concurrent delete_component waits for this stack.
                found = connection.execute(
                    select(c.id).where((c.kind == kind) & (c.name == component)).with_for_update()
                ).first()
                if found is None:
                    raise component_not_found(kind, component)
            exists = connection.execute(
                select(table.c.id).where(table.c.name == name).with_for_update()
            ).first()
            if exists is None:
                connection.execute(
                    insert(table).values(
                        id=new_id(), name=name, components=dict(components), created_at=utcnow()
                    )
                )
            elif replace:
                connection.execute(
                    update(table).where(table.c.name == name).values(components=dict(components))
                )
            else:
                raise _stack_exists_error(name)
    except IntegrityError:
        raise _stack_exists_error(name) from None


def _stack_exists_error(name: str) -> ConfigError:
    return ConfigError(
        f"A stack named '{name}' is already registered. Pick another name, or pass "
        "replace=True to overwrite it.",
        stack=name,
        already_registered=True,
    )


def delete_stack(store: MetadataStore, name: str) -> bool:
    """Delete a stack; if it was the stored active stack, ``local`` becomes active.

    Returns:
        Whether the active stack was reset to ``local``.

    Raises:
        NotFoundError: No such stack.
    """
    with store.write() as connection:
        deleted = connection.execute(delete(t.stacks).where(t.stacks.c.name == name))
        if deleted.rowcount == 0:
            raise stack_not_found(name)
        reset = connection.execute(
            delete(t.project_settings).where(
                (t.project_settings.c.key == ACTIVE_STACK) & (t.project_settings.c.value == name)
            )
        )
    return bool(reset.rowcount)


def stack_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"No stack named '{name}'. List stacks with 'mlzen stack list', or register it with "
        f"'mlzen stack register {name} -o ORCHESTRATOR -a ARTIFACT_STORE'.",
        stack=name,
    )


def set_active_stack(store: MetadataStore, name: str) -> None:
    """Make ``name`` the project's active stack; it must be ``local`` or registered."""
    for attempt in range(3):
        try:
            with store.write() as connection:
                if name != "local":
                    found = connection.execute(
                        select(t.stacks.c.id).where(t.stacks.c.name == name).with_for_update()
                    ).first()
                    if found is None:
                        raise stack_not_found(name)
                _put_setting(connection, ACTIVE_STACK, name)
            return
        except IntegrityError:
            # Another process inserted the setting between our update and insert.
            if attempt == 2:
                raise


def _put_setting(connection: Connection, key: str, value: str) -> None:
    table = t.project_settings
    changed = connection.execute(update(table).where(table.c.key == key).values(value=value))
    if changed.rowcount == 0:
        connection.execute(insert(table).values(key=key, value=value))


def save_secret(store: MetadataStore, name: str, ciphertext: str) -> bool:
    """Store a secret's ciphertext, replacing any earlier one; returns whether it is new."""
    table = t.secrets
    now = utcnow()
    for attempt in range(3):
        try:
            with store.write() as connection:
                changed = connection.execute(
                    update(table)
                    .where(table.c.name == name)
                    .values(ciphertext=ciphertext, updated_at=now)
                )
                if changed.rowcount:
                    return False
                connection.execute(
                    insert(table).values(
                        id=new_id(),
                        name=name,
                        ciphertext=ciphertext,
                        created_at=now,
                        updated_at=now,
                    )
                )
                return True
        except IntegrityError:
            # Created by another process between the update and the insert: update it.
            if attempt == 2:
                raise
    return False


def delete_secret(store: MetadataStore, name: str, is_used: Callable[[Any], bool]) -> None:
    """Delete a secret that no component config references.

    Args:
        is_used: Whether a component config (JSON) references this secret.

    Raises:
        NotFoundError: No such secret.
        ConfigError: A component references it; names the component.
    """
    with store.write() as connection:
        found = connection.execute(select(t.secrets.c.id).where(t.secrets.c.name == name))
        if found.first() is None:
            raise secret_not_found(name)
        c = t.stack_components.c
        users = sorted(
            f"{kind} '{component}'"
            for kind, component, config in connection.execute(select(c.kind, c.name, c.config))
            if is_used(config)
        )
        if users:
            raise ConfigError(
                f"Secret '{name}' is referenced by the {users[0]} component"
                + (f" (and {', '.join(users[1:])})" if users[1:] else "")
                + ". Register that component again without the reference (--replace), or "
                "delete it, first.",
                secret=name,
                component=users[0],
            )
        connection.execute(delete(t.secrets).where(t.secrets.c.name == name))


def secret_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"No secret named '{name}'. List secrets with 'mlzen secret list', or create it with "
        f"'mlzen secret set {name} KEY=VALUE ...'.",
        secret=name,
    )
