"""The REST API under ``/api/v1``: one router gathering the resource routers."""

from __future__ import annotations

from fastapi import APIRouter

from mlzen.server.routes import auth

router = APIRouter(prefix="/api/v1")
router.include_router(auth.router)
