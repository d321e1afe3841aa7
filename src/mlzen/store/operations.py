"""Store operations a logged-in client runs on the team server, and how their values travel.

A store function is a ``MetadataStore`` method or a module function whose first
argument is the store. Marked with :func:`remote_read` or :func:`remote_write`, it runs
wherever the store is: called with a ``RemoteMetadataStore`` (after ``mlzen login``),
the call goes by name to the server, which runs the same function on its own store and
sends the result back. Unmarked functions (the stack registry, secrets, users and API
keys) never leave the process, and the server runs nothing that is not in
:data:`OPERATIONS`: the decorators are its whitelist. A new store function opts in with
one line::

    @remote_read
    def list_models(store: MetadataStore) -> list[dict[str, Any]]: ...

    @remote_write(idempotent=True)
    def heartbeat(self, run_id: str) -> None: ...

``idempotent`` says the client may resend the call when the connection broke after the
request left (a timeout, a dropped connection); any call is resent when it never reached
the server.

Values travel as JSON with tags for what JSON lacks, so results come back with the same
types: ``{"__datetime__": "2026-11-27T05:12:37"}``, ``{"__float__": "nan"}``,
``{"__decimal__": "12"}``; a dict that looks like a tag travels as ``{"__dict__": {...}}``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
Role = Literal["viewer", "editor"]

_DATETIME, _DATE, _FLOAT, _DECIMAL, _DICT = (
    "__datetime__",
    "__date__",
    "__float__",
    "__decimal__",
    "__dict__",
)
_TAGS = frozenset({_DATETIME, _DATE, _FLOAT, _DECIMAL, _DICT})


class Operation:
    """One store function a server runs for remote clients.

    Attributes:
        name: ``<module>.<function>``, e.g. ``metadata.create_run``, ``queries.list_runs``.
        function: the undecorated function; its first argument is the store.
        role: the least role that may call it (``viewer`` reads, ``editor`` writes).
        idempotent: whether resending it after a broken connection is harmless.
    """

    def __init__(self, function: Callable[..., Any], role: Role, idempotent: bool) -> None:
        self.name = f"{function.__module__.rsplit('.', 1)[-1]}.{function.__name__}"
        self.function = function
        self.role: Role = role
        self.idempotent = idempotent

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.function)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.function) or self.name
        return doc.split("\n\n", 1)[0].replace("\n", " ")

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, the store left out, as the server will bind them.

        Raises:
            TypeError: the arguments do not fit the function (as a direct call would).
        """
        bound = self.signature.bind(None, *args, **kwargs)
        parameters = self.signature.parameters
        named: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            if parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                named.update(value)
            else:
                named[name] = value
        return named

    def __repr__(self) -> str:
        return f"<Operation {self.name} ({self.role})>"


OPERATIONS: dict[str, Operation] = {}
"""Every operation a server may run for a client, by name (filled as modules import)."""


def _register(function: F, role: Role, idempotent: bool) -> F:
    operation = Operation(function, role, idempotent)
    kinds = {p.kind for p in operation.signature.parameters.values()}
    if inspect.Parameter.VAR_POSITIONAL in kinds or not operation.signature.parameters:
        raise TypeError(
            f"{operation.name} cannot be a remote store operation: it needs the store as its "
            "first argument and no *args."
        )
    known = OPERATIONS.get(operation.name)
    if known is not None and (known.function.__module__, known.function.__qualname__) != (
        function.__module__,
        function.__qualname__,
    ):
        raise TypeError(
            f"Two remote store operations are named {operation.name}: "
            f"{known.function.__module__}.{known.function.__qualname__} and "
            f"{function.__module__}.{function.__qualname__}. Rename one."
        )
    OPERATIONS[operation.name] = operation

    @functools.wraps(function)
    def run_where_the_store_is(store: Any, *args: Any, **kwargs: Any) -> Any:
        remote_call = getattr(store, "remote_call", None)
        if remote_call is None:
            return function(store, *args, **kwargs)
        return remote_call(operation, args, kwargs)

    return run_where_the_store_is  # type: ignore[return-value]


def remote_read(function: F) -> F:
    """Mark a store function that only reads: viewers may call it on a server."""
    return _register(function, "viewer", True)


def remote_write(*, idempotent: bool = False, role: Role = "editor") -> Callable[[F], F]:
    """Mark a store function that changes the store: editors may call it on a server.

    Args:
        idempotent: resending it after a broken connection does no harm.
        role: the least role allowed; ``viewer`` only for bookkeeping that any read
            would do anyway (marking runs whose lease ran out as crashed).
    """

    def mark(function: F) -> F:
        return _register(function, role, idempotent)

    return mark


# -- the wire format ----------------------------------------------------------------------


def encode(value: Any) -> Any:
    """``value`` as JSON-safe data that :func:`decode` turns back into equal values.

    Mappings become dicts, other iterables (tuples, sets, dict views, generators) lists,
    dataclasses dicts of their fields.

    Raises:
        TypeError: a value of a type that cannot travel, or a dict key that is not a str.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"Cannot send a dict with the {type(key).__name__} key {key!r}.")
            encoded[key] = encode(item)
        return {_DICT: encoded} if len(encoded) == 1 and next(iter(encoded)) in _TAGS else encoded
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return [encode(item) for item in value]
    raise TypeError(f"Cannot send a {type(value).__name__} to or from an mlzen server.")


def decode(value: Any) -> Any:
    """The values :func:`encode` encoded."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, item = next(iter(value.items()))
        if tag == _DICT and isinstance(item, dict):
            return {k: decode(v) for k, v in item.items()}
        if isinstance(item, str):
            try:
                if tag == _DATETIME:
                    return datetime.fromisoformat(item)
                if tag == _DATE:
                    return date.fromisoformat(item)
                if tag == _FLOAT and item in ("nan", "inf", "-inf"):
                    return float(item)
                if tag == _DECIMAL:
                    return Decimal(item)
            except (ValueError, ArithmeticError):
                raise ValueError(f"{value!r} is not a valid tagged value.") from None
    return {k: decode(v) for k, v in value.items()}
