"""``create_app``: the team server's FastAPI application over one metadata store.

The app serves ``/health`` (no auth), the REST API under ``/api/v1`` (its OpenAPI at
``/openapi.json`` and Swagger UI at ``/docs``, for logged-in users), the remote store's
endpoints and the dashboard at ``/``. Every response carries a ``Server-Timing:
app;dur=<ms>`` header: the time the server spent before it started answering, which the
benchmarks read. A request body over the setting ``max_request_bytes`` is refused
with a 413 before it is read (:mod:`mlzen.body_limit`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlzen.body_limit import BodyLimitMiddleware
from mlzen.errors import (
    ConfigError,
    MlzenError,
    NotFoundError,
    StoreError,
    TooManyAttemptsError,
)
from mlzen.server.auth import StoreContextMiddleware, require_viewer
from mlzen.server.schemas import ErrorBody, Health

if TYPE_CHECKING:
    from mlzen.config import Settings
    from mlzen.stack import Stack

API_PREFIX = "/api/v1"
# An error's detail and fields are cut to this many characters: an answer never carries
# back a huge value a request sent.
SHOWN_CHARS = 2000


class ServerTimingMiddleware:
    """Adds ``Server-Timing: app;dur=<milliseconds>`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed:.2f}")
            await send(message)

        await self.app(scope, receive, send_with_timing)


def _status_for(exc: MlzenError) -> int:
    """404 for what does not exist, 400 for bad input, 503 when the store is down, 429
    for too many logins, 409 for anything in a state that does not allow the request (a
    running run, an artifact outside the store or corrupted)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, TooManyAttemptsError):
        return 429
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, ConfigError):
        return 400
    return 409


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text``, cut to ``limit`` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def error_response(
    status: int, error: str, detail: str, fields: Mapping[str, object] | None = None
) -> JSONResponse:
    """An answer in the shape every failed request gets: ``{error, detail, fields}``."""
    shown = {
        k: clip(v) if isinstance(v, str) else v
        for k, v in (fields or {}).items()
        if isinstance(v, str | int | float | bool)
    }
    body = ErrorBody(error=error, detail=clip(detail), fields=shown)
    return JSONResponse(body.model_dump(), status_code=status)


async def _mlzen_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlzenError)
    fields = dict(exc.fields)
    detail = exc.message
    stack = getattr(request.app.state, "stack", None)
    if stack is not None and "artifact_store" in stack.__dict__:
        # Where the server keeps artifacts is none of a client's business.
        root = stack.artifact_store.root
        detail = detail.replace(root, "<artifact store>")
        fields = {
            k: v.replace(root, "<artifact store>") if isinstance(v, str) else v
            for k, v in fields.items()
        }
    response = error_response(_status_for(exc), type(exc).__name__, detail, fields)
    if isinstance(exc, TooManyAttemptsError):
        response.headers["Retry-After"] = str(exc.fields.get("retry_after", 60))
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not fit the route's parameters: 422, each problem named by
    where it is, the value itself never sent back."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in exc.errors()[:20]
    ]
    detail = "; ".join(problems) or "The request does not fit this route."
    first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
    return error_response(
        422,
        "ValidationError",
        f"{detail}. See /docs for what this route takes.",
        {"location": ".".join(str(part) for part in first)},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """What a route refused with an ``HTTPException`` (401, 403, a malformed body, an
    unknown path): the same ``{error, detail, fields}`` shape, its headers kept."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    try:
        error = HTTPStatus(exc.status_code).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        error = "HTTPError"
    response = error_response(exc.status_code, error, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """An error mlzen did not expect (a bug): 500, in the same shape; the traceback goes
    to the server's log."""
    return error_response(
        500,
        "InternalError",
        f"The server failed on {request.method} {clip(request.url.path, 200)} "
        f"({type(exc).__name__}). Its log has the details; please report it.",
    )


def server_stack(
    store_url: str | None = None,
    *,
    project_root: Path | None = None,
    artifact_root: str | None = None,
) -> tuple[Settings, Stack]:
    """The project's settings and the stack a server serves: the project's active stack,
    with ``store_url`` and ``artifact_root`` replacing its stores when given.

    Raises:
        ConfigError: The store to serve is itself a server (the project is logged in).
    """
    from mlzen.artifacts.store import artifact_store_for
    from mlzen.config import load_settings
    from mlzen.stack import active_stack_name, load_stack

    project = load_settings(project_root=project_root) if project_root else load_settings()
    stack = load_stack(active_stack_name(project), project)
    if store_url:
        stack.store_url = store_url
    if stack.store_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"This project records its runs on the server {stack.store_url.split('@')[-1]} "
            "(mlzen login), so it has no database of its own to serve. Serve a database: "
            "pass --store-url (e.g. sqlite:///team.db or postgresql+psycopg://...), or run "
            "'mlzen logout' first.",
        )
    if artifact_root:
        stack.__dict__["artifact_store"] = artifact_store_for(artifact_root)
    return project, stack


def create_app(
    store_url: str | None = None,
    *,
    project_root: Path | None = None,
    artifact_root: str | None = None,
) -> FastAPI:
    """Build the server app.

    Args:
        store_url: The metadata store to serve; by default that of the project's active
            stack.
        project_root: The project whose settings and active stack to use; by default
            the one ``MLZEN_PROJECT_ROOT`` or the current folder names.
        artifact_root: Where to read artifacts; by default the active stack's artifact
            store.

    ``app.state`` holds ``settings`` (the project's :class:`mlzen.config.Settings`, with
    the served ``store_url``), ``stack``, ``store`` (the :class:`MetadataStore`) and
    ``client`` (a :class:`mlzen.Client` over them).
    """
    from fastapi.staticfiles import StaticFiles

    from mlzen.client import Client
    from mlzen.server import dashboard
    from mlzen.server.routes import store as store_routes
    from mlzen.server.routes.api import router as api_router

    project, stack = server_stack(store_url, project_root=project_root, artifact_root=artifact_root)
    store = stack.metadata_store

    app = FastAPI(
        title="mlzen server",
        summary="Pipelines, runs, artifacts, lineage and models of one mlzen metadata store.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = dataclasses.replace(project, store_url=stack.store_url)
    app.state.stack = stack
    app.state.store = store
    app.state.client = Client(stack)
    app.add_exception_handler(MlzenError, _mlzen_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(StoreContextMiddleware, store=store)
    app.add_middleware(ServerTimingMiddleware)
    # Outermost: an oversized body is refused before any other layer runs.
    app.add_middleware(BodyLimitMiddleware, limit=project.max_request_bytes)

    @app.get("/health", response_model=Health, tags=["server"])
    def health() -> Health:
        """Liveness: answers without credentials."""
        return Health(status="ok")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_viewer)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_viewer)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mlzen server API")

    app.include_router(api_router)
    app.include_router(store_routes.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    return app
