"""Plugins: the entry-point groups mlzen reads, and the flavors registered in them.

A package extends mlzen by declaring entry points in its ``pyproject.toml``::

    [project.entry-points."mlzen.flavors"]
    "orchestrator.k8s" = "mlzen_k8s.flavor:KubernetesOrchestratorFlavor"

mlzen's own flavors register the same way, in mlzen's ``pyproject.toml``. The group
is listed once, on first use, and an entry point is imported only when its flavor is
asked for: a plugin with heavy (or missing) dependencies costs nothing until a stack
uses it. After installing a package into a running interpreter, call
:func:`clear_cache`.
"""

from __future__ import annotations

import functools
import threading
from importlib.metadata import EntryPoint, entry_points

from mlzen.errors import ConfigError, NotFoundError
from mlzen.flavors import Flavor

#: Every entry-point group mlzen reads, by what it registers.
ENTRY_POINT_GROUPS = {
    "flavors": "mlzen.flavors",
    "materializers": "mlzen.materializers",
}

_loaded: dict[tuple[str, str], type[Flavor]] = {}
_lock = threading.Lock()


@functools.cache
def _flavor_entry_points() -> dict[tuple[str, str], EntryPoint]:
    """``(kind, name)`` → entry point, for every well-formed ``<kind>.<name>`` entry."""
    found: dict[tuple[str, str], EntryPoint] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUPS["flavors"]):
        kind, dot, name = entry_point.name.partition(".")
        if dot and kind and name:
            found.setdefault((kind, name), entry_point)
    return found


def flavors(kind: str | None = None) -> list[tuple[str, str]]:
    """The registered flavors as sorted ``(kind, name)`` pairs, none of them imported.

    Args:
        kind: Only flavors of this component kind (``orchestrator``, ...).
    """
    return sorted(key for key in _flavor_entry_points() if kind is None or key[0] == kind)


def flavor(kind: str, name: str) -> type[Flavor]:
    """The flavor class registered as ``<kind>.<name>``, imported on first use.

    Raises:
        NotFoundError: No such flavor is registered; lists those that are.
        ConfigError: The entry point cannot be imported or is not a matching ``Flavor``.
    """
    key = (kind, name)
    loaded = _loaded.get(key)
    if loaded is not None:
        return loaded
    entry_point = _flavor_entry_points().get(key)
    if entry_point is None:
        available = [n for _, n in flavors(kind)]
        raise NotFoundError(
            f"No {kind} flavor named '{name}'. Available {kind} flavors: "
            f"{', '.join(available) or 'none'}. Pick one of these, or install the package "
            f"that registers '{kind}.{name}' in the entry-point group "
            f"'{ENTRY_POINT_GROUPS['flavors']}'.",
            kind=kind,
            flavor=name,
        )
    where = f"entry point '{entry_point.name} = {entry_point.value}'"
    with _lock:
        try:
            found = entry_point.load()
        except Exception as exc:
            raise ConfigError(
                f"The {kind} flavor '{name}' ({where}) cannot be imported: "
                f"{type(exc).__name__}: {exc}. Install what it needs (for mlzen's own "
                f"flavors: pip install 'mlzen[{name}]').",
                kind=kind,
                flavor=name,
            ) from exc
        if not (isinstance(found, type) and issubclass(found, Flavor)):
            raise ConfigError(
                f"The {kind} flavor '{name}' ({where}) is {found!r}, not a subclass of "
                "mlzen.flavors.Flavor. Fix the entry point in the package that declares it.",
                kind=kind,
                flavor=name,
            )
        if (getattr(found, "kind", None), getattr(found, "name", None)) != key:
            raise ConfigError(
                f"The {kind} flavor '{name}' ({where}) declares kind "
                f"'{getattr(found, 'kind', None)}' and name '{getattr(found, 'name', None)}'. "
                "The entry point's name must be '<kind>.<name>' of the class it points to.",
                kind=kind,
                flavor=name,
            )
        _loaded[key] = found
    return found


def clear_cache() -> None:
    """Forget the listed and imported flavors, so the next lookup reads entry points anew."""
    with _lock:
        _flavor_entry_points.cache_clear()
        _loaded.clear()
