"""FastAPI dependencies that hand a route what the app was built over."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlzen.artifacts.store import ArtifactStore
from mlzen.client import Client
from mlzen.store.metadata import MetadataStore


def get_client(request: Request) -> Client:
    """A :class:`mlzen.Client` over the server's stack (its store and artifact store)."""
    return request.app.state.client  # type: ignore[no-any-return]


def get_store(request: Request) -> MetadataStore:
    """The server's metadata store."""
    return request.app.state.store  # type: ignore[no-any-return]


def get_artifact_store(request: Request) -> ArtifactStore:
    """The artifact store the server reads artifacts from."""
    return request.app.state.stack.artifact_store  # type: ignore[no-any-return]


ClientDep = Annotated[Client, Depends(get_client)]
StoreDep = Annotated[MetadataStore, Depends(get_store)]
ArtifactStoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]
