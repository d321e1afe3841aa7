"""Registering, deleting, listing and describing stacks and components.

The registry lives in the project's own metadata store (see ``stack.py`` for how a
registered stack is loaded and used). Secret values never leave this module in clear:
descriptions redact options that look like credentials and passwords inside URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlzen.config import Settings, load_settings
from mlzen.errors import ConfigError
from mlzen.flavors import KINDS, OPTIONAL_KINDS
from mlzen.stack import LOCAL, _flavor, _registry, active_stack_name

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SECRET_OPTION = re.compile(
    r"password|passwd|secret|token|credential|private|api_?key|access_?key|^key$", re.I
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(?=@)")


def _check_name(what: str, name: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{what} name '{name}' is not allowed: start with a letter or digit and use "
            "letters, digits, '_', '.' and '-'.",
            name=name,
        )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(
            f"Unknown component kind '{kind}'. Kinds: {', '.join(KINDS)}.",
            kind=kind,
        )


def register_component(
    kind: str,
    name: str,
    flavor: str,
    config: Mapping[str, Any],
    *,
    replace: bool = False,
    settings: Settings | None = None,
) -> None:
    """Validate ``config`` with the flavor and record the component.

    The config is stored as given, secret references unresolved; they are checked for
    form here and resolved whenever a stack using the component is loaded.

    Raises:
        ConfigError: A bad kind or name, an unknown option or a value the flavor rejects
            (naming the option and the reason), or an existing component (without
            ``replace``).
        NotFoundError: No such flavor; lists those there are.
    """
    from mlzen.secrets import REFERENCE, references
    from mlzen.store import registry

    settings = settings or load_settings()
    _check_kind(kind)
    _check_name("Component", name)
    if name == LOCAL:
        raise ConfigError(
            f"'{LOCAL}' is the built-in {kind} of every project (configured by settings); "
            "give your component another name.",
            kind=kind,
            component=name,
        )
    flavor_class = _flavor(kind, flavor)
    references(config, f"Component {kind} '{name}'")
    # A value that refers to a secret can only be checked once resolved (when a stack
    # using the component loads); check everything else now.
    deferred = {k for k, v in config.items() if isinstance(v, str) and REFERENCE.search(v)}
    try:
        flavor_class.validate_config(
            {k: v for k, v in config.items() if k not in deferred},
            component=f"{kind} '{name}'",
            project_root=str(settings.project_root),
        )
    except ConfigError as exc:
        if exc.fields.get("option") not in deferred:
            raise
    registry.save_component(
        _registry(settings), kind=kind, name=name, flavor=flavor, config=config, replace=replace
    )


def delete_component(kind: str, name: str, *, settings: Settings | None = None) -> None:
    """Delete a component; refused while a stack uses it (naming the stack)."""
    from mlzen.store import registry

    _check_kind(kind)
    if name == LOCAL:
        raise ConfigError(
            f"'{LOCAL}' is the built-in {kind}; it cannot be deleted.", kind=kind, component=name
        )
    registry.delete_component(_registry(settings or load_settings()), kind, name)


def register_stack(
    name: str,
    components: Mapping[str, str | None],
    *,
    replace: bool = False,
    settings: Settings | None = None,
) -> None:
    """Record a stack of registered components ({kind: name}); a kind left out or
    named ``local`` is the local component of that kind.

    Raises:
        NotFoundError: A component that is not registered; names it.
        ConfigError: A bad name, or an existing stack (without ``replace``).
    """
    from mlzen.store import registry

    _check_name("Stack", name)
    if name == LOCAL:
        raise ConfigError(
            f"'{LOCAL}' is the built-in stack; give yours another name.",
            stack=name,
        )
    chosen = {}
    for kind, component in components.items():
        _check_kind(kind)
        if component == LOCAL and kind in OPTIONAL_KINDS:
            raise ConfigError(
                f"There is no built-in {kind}: register one first ('mlzen component register "
                f"{kind} NAME --flavor ...') and name it, or leave the {kind} out.",
                kind=kind,
            )
        if component and component != LOCAL:
            chosen[kind] = component
    registry.save_stack(_registry(settings or load_settings()), name, chosen, replace=replace)


def delete_stack(name: str, *, force: bool = False, settings: Settings | None = None) -> bool:
    """Delete a stack; not ``local``, and not the active one unless ``force``.

    Returns:
        Whether it was the stored active stack, which is now ``local``.
    """
    from mlzen.store import registry

    settings = settings or load_settings()
    if name == LOCAL:
        raise ConfigError(f"'{LOCAL}' is the built-in stack; it cannot be deleted.", stack=name)
    if not force and active_stack_name(settings) == name:
        raise ConfigError(
            f"Stack '{name}' is the active stack. Switch first ('mlzen stack set local'), or "
            "add --force to delete it and make 'local' active.",
            stack=name,
        )
    return registry.delete_stack(_registry(settings), name)


def set_active_stack(name: str, *, settings: Settings | None = None) -> None:
    """Store ``name`` as the project's active stack (``MLZEN_STACK`` still wins)."""
    from mlzen.store import registry

    settings = settings or load_settings()
    registry.set_active_stack(_registry(settings), name)


def redacted(config: Any, key: str = "") -> Any:
    """``config`` for display: passwords in URLs and options named like credentials are
    hidden, unless they are secret references (which hold no secret)."""
    if isinstance(config, Mapping):
        return {k: redacted(v, str(k)) for k, v in config.items()}
    if isinstance(config, list):
        return [redacted(v, key) for v in config]
    if isinstance(config, str):
        from mlzen.secrets import REFERENCE

        if _SECRET_OPTION.search(key) and not REFERENCE.fullmatch(config.strip()):
            return "********"

        def hide(match: re.Match[str]) -> str:
            password = match.group(2)
            return match.group(0) if REFERENCE.fullmatch(password) else match.group(1) + "***"

        return _URL_PASSWORD.sub(hide, config)
    return config


def _local_components(settings: Settings) -> list[dict[str, Any]]:
    remote_artifacts = "://" in settings.artifact_root
    return [
        {
            "kind": "orchestrator",
            "name": LOCAL,
            "flavor": "local",
            "config": {"executor": settings.executor, "max_workers": settings.max_workers},
        },
        {
            "kind": "artifact_store",
            "name": LOCAL,
            "flavor": "fsspec" if remote_artifacts else "local",
            "config": {"url" if remote_artifacts else "path": settings.artifact_root},
        },
        {
            "kind": "metadata_store",
            "name": LOCAL,
            "flavor": "sql",
            "config": {"url": settings.store_url},
        },
        {"kind": "model_deployer", "name": LOCAL, "flavor": "local", "config": {}},
    ]


def list_components(
    kind: str | None = None, *, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Every component (the built-in ``local`` ones first) with its config for display
    and the stacks that use it."""
    from mlzen.store import queries

    settings = settings or load_settings()
    if kind is not None:
        _check_kind(kind)
    registry = _registry(settings)
    stacks = queries.list_stacks(registry)
    found = [
        {**c, "builtin": True, "created_at": None}
        for c in _local_components(settings)
        if kind is None or c["kind"] == kind
    ]
    found += [{**c, "builtin": False} for c in queries.list_components(registry, kind)]
    for component in found:
        component["config"] = redacted(component["config"])
        component["stacks"] = [
            s["name"]
            for s in stacks
            if (s["components"] or {}).get(component["kind"], LOCAL) == component["name"]
        ]
        if component["name"] == LOCAL:
            component["stacks"].insert(0, LOCAL)
    return [{k: c[k] for k in _COMPONENT_KEYS} for c in found]


_COMPONENT_KEYS = ("kind", "name", "flavor", "builtin", "config", "stacks", "created_at")


def describe_component(kind: str, name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One component as :func:`list_components` shows it.

    Raises:
        NotFoundError: No such component.
    """
    from mlzen.store.registry import component_not_found

    for component in list_components(kind, settings=settings):
        if component["name"] == name:
            return component
    raise component_not_found(kind, name)


def list_stacks(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """``local`` and every registered stack: name, whether active, component names."""
    from mlzen.store import queries

    settings = settings or load_settings()
    active = active_stack_name(settings)
    rows: list[dict[str, Any]] = [{"name": LOCAL, "components": {}, "created_at": None}]
    rows += queries.list_stacks(_registry(settings))
    return [
        {
            "name": row["name"],
            "active": row["name"] == active,
            "components": {
                kind: (row["components"] or {}).get(kind, LOCAL)
                for kind in KINDS
                if kind not in OPTIONAL_KINDS or kind in (row["components"] or {})
            },
            "created_at": row["created_at"],
        }
        for row in rows
    ]


def describe_stack(name: str | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """A stack (the active one by default) with each component's flavor and config.

    Raises:
        NotFoundError: No such stack.
    """
    from mlzen.store.registry import stack_not_found

    settings = settings or load_settings()
    name = name or active_stack_name(settings)
    for stack in list_stacks(settings=settings):
        if stack["name"] == name:
            components = {
                c["kind"] + "/" + c["name"]: c for c in list_components(settings=settings)
            }
            stack["components"] = {
                kind: {
                    key: components[f"{kind}/{component}"][key]
                    for key in ("name", "flavor", "config")
                }
                for kind, component in stack["components"].items()
            }
            return stack
    raise stack_not_found(name)
