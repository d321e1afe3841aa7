"""``POST /api/v1/store/<operation>``: the metadata store, for logged-in clients.

A client logged in with ``mlzen login`` records its runs here through
``RemoteMetadataStore``. There is one route per store operation marked in
:mod:`mlzen.store.operations` (``metadata.create_run``, ``queries.list_runs``, ...), and
no other: a name that is not marked has no route, so the server never runs a function a
request names. Reads need the viewer role, writes the editor role (each operation says
which). The body is ``{"arguments": {...}}`` in the tagged JSON of
:func:`mlzen.store.operations.encode`; the arguments are bound to the function's
signature and validated against its type hints before it runs; the answer is
``{"result": ...}`` in the same encoding.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from mlzen.server.auth import require_editor, require_viewer
from mlzen.server.schemas import ErrorBody
from mlzen.store.metadata import MetadataStore
from mlzen.store.operations import OPERATIONS, Operation, decode, encode

router = APIRouter(prefix="/api/v1/store", tags=["store"])


class StoreCall(BaseModel):
    """The arguments of one store operation, by name, the store left out."""

    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments by parameter name, in mlzen's tagged JSON (datetimes as "
        '{"__datetime__": "<ISO 8601>"}).',
    )


class StoreResult(BaseModel):
    """What the operation returned, in mlzen's tagged JSON."""

    result: Any = None


def load_operations() -> list[Operation]:
    """Every operation marked in the modules of ``mlzen.store``, by name."""
    import mlzen.store

    for module in pkgutil.iter_modules(mlzen.store.__path__):
        if not module.ispkg:
            importlib.import_module(f"mlzen.store.{module.name}")
    return sorted(OPERATIONS.values(), key=lambda operation: operation.name)


class _Binder:
    """Binds a request's arguments to an operation and validates them by type hint."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        try:
            hints = typing.get_type_hints(operation.function)
        except (NameError, TypeError):
            hints = {}
        self.adapters: dict[str, TypeAdapter[Any]] = {}
        for parameter in list(operation.signature.parameters.values())[1:]:
            hint = hints.get(parameter.name, Any)
            self.adapters[parameter.name] = TypeAdapter(hint)

    def bind(self, store: MetadataStore, arguments: dict[str, Any]) -> inspect.BoundArguments:
        bound = self.operation.signature.bind(store, **arguments)
        parameters = self.operation.signature.parameters
        for name, value in list(bound.arguments.items())[1:]:
            adapter = self.adapters[name]
            if parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: adapter.validate_python(v) for k, v in value.items()}
            else:
                bound.arguments[name] = adapter.validate_python(value)
        return bound


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, detail=detail).model_dump(), status_code=status)


def _endpoint(operation: Operation) -> Callable[..., Any]:
    binder = _Binder(operation)

    def call(request: Request, body: StoreCall) -> Any:
        from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

        from mlzen.errors import StoreError

        store: MetadataStore = request.app.state.store
        try:
            bound = binder.bind(store, decode(body.arguments))
            result = operation.function(*bound.args, **bound.kwargs)
        except (
            TypeError,
            ValueError,
            ValidationError,
            DataError,
            OverflowError,
            RecursionError,
        ) as exc:
            # ValidationError is a ValueError; a lazily validated iterable raises it here.
            # OverflowError: an integer too large for the database (e.g. a limit).
            return _error(
                422,
                "ValidationError",
                f"Bad arguments for '{operation.name}': {exc}. Is the client the same mlzen "
                "version as the server?",
            )
        except IntegrityError as exc:
            return _error(
                409,
                "IntegrityError",
                f"'{operation.name}' conflicts with what the store holds: {exc.orig}",
            )
        except OperationalError as exc:
            raise StoreError(
                f"The server's metadata store failed '{operation.name}': {exc.orig}. Retry.",
            ) from exc
        except SQLAlchemyError as exc:
            return _error(
                422,
                "ValidationError",
                f"The store rejected the arguments of '{operation.name}': {exc}",
            )
        return StoreResult(result=encode(result))

    call.__name__ = operation.name.replace(".", "_")
    return call


def _add_routes() -> None:
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422)
    }
    for operation in load_operations():
        role = require_editor if operation.role == "editor" else require_viewer
        router.add_api_route(
            f"/{operation.name}",
            _endpoint(operation),
            methods=["POST"],
            response_model=StoreResult,
            dependencies=[Depends(role)],
            summary=operation.summary,
            description=f"Runs `{operation.name}` on the server's store; needs the "
            f"{operation.role} role.",
            responses=errors,
            name=f"store.{operation.name}",
        )


_add_routes()
