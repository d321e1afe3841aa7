"""``/api/v1/stacks``: the stacks registered in the served store (read only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from mlzen import stack_registry
from mlzen.server.auth import require_viewer
from mlzen.server.schemas import StackDetail, StackOut

router = APIRouter(prefix="/stacks", dependencies=[Depends(require_viewer)], tags=["stacks"])


@router.get("", response_model=list[StackOut])
def list_stacks(request: Request) -> list[StackOut]:
    """``local`` and every registered stack, with the names of their components."""
    rows = stack_registry.list_stacks(settings=request.app.state.settings)
    return [StackOut.model_validate(row) for row in rows]


@router.get("/{name}", response_model=StackDetail)
def get_stack(name: str, request: Request) -> StackDetail:
    """One stack with each component's flavor and config (credentials hidden)."""
    row = stack_registry.describe_stack(name, settings=request.app.state.settings)
    return StackDetail.model_validate(row)
