"""``create_app``: the team server's FastAPI application over one metadata store.

The app serves ``/health`` (no auth), the REST API under ``/api/v1`` (OpenAPI at
``/docs``), the remote store's write endpoints and the dashboard at ``/``. Every
response carries a ``Server-Timing: app;dur=<ms>`` header: the time the server spent
before it started answering, which the benchmarks read.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlzen.errors import (
    ArtifactCorruptedError,
    ConfigError,
    MlzenError,
    NotFoundError,
    StoreError,
)
from mlzen.server.auth import StoreContextMiddleware
from mlzen.server.schemas import ErrorBody, Health

API_PREFIX = "/api/v1"


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
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, StoreError | ArtifactCorruptedError):
        return 503 if isinstance(exc, StoreError) else 500
    if isinstance(exc, ConfigError):
        return 400
    return 409


async def _mlzen_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlzenError)
    fields = {k: v for k, v in exc.fields.items() if isinstance(v, str | int | float | bool)}
    body = ErrorBody(error=type(exc).__name__, detail=exc.message, fields=fields)
    return JSONResponse(body.model_dump(), status_code=_status_for(exc))


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
    from mlzen.artifacts.store import artifact_store_for
    from mlzen.client import Client
    from mlzen.config import load_settings
    from mlzen.server.routes.api import router as api_router
    from mlzen.stack import Stack, active_stack_name, load_stack

    project = load_settings(project_root=project_root) if project_root else load_settings()
    base = load_stack(active_stack_name(project), project)
    stack = Stack(
        project,
        base.name,
        orchestrator=base.orchestrator,
        artifact_store=artifact_store_for(artifact_root) if artifact_root else base.artifact_store,
        store_url=store_url or base.store_url,
        components=base.components,
    )
    store = stack.metadata_store

    app = FastAPI(
        title="mlzen server",
        summary="Pipelines, runs, artifacts, lineage and models of one mlzen metadata store.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = dataclasses.replace(project, store_url=stack.store_url)
    app.state.stack = stack
    app.state.store = store
    app.state.client = Client(stack)
    app.add_exception_handler(MlzenError, _mlzen_error)
    app.add_middleware(StoreContextMiddleware, store=store)
    app.add_middleware(ServerTimingMiddleware)

    @app.get("/health", response_model=Health, tags=["server"])
    def health() -> Health:
        """Liveness: answers without credentials."""
        return Health(status="ok")

    app.include_router(api_router)
    _include_store_and_dashboard(app)
    return app


def _include_store_and_dashboard(app: FastAPI) -> None:
    # Guarded only while the remote-store routes and the dashboard are being written.
    import importlib.util

    if importlib.util.find_spec("mlzen.server.routes.store") is not None:
        from mlzen.server.routes import store as store_routes

        app.include_router(store_routes.router)
    if importlib.util.find_spec("mlzen.server.dashboard") is not None:
        from mlzen.server import dashboard

        if hasattr(dashboard, "router"):
            from fastapi.staticfiles import StaticFiles

            app.include_router(dashboard.router)
            app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
