"""The REST API under ``/api/v1``: one router gathering the resource routers."""

from __future__ import annotations

from fastapi import APIRouter

from mlzen.server.routes import artifacts, auth, models, runs, stacks, users

router = APIRouter(prefix="/api/v1")
router.include_router(auth.router)
router.include_router(runs.router)
router.include_router(artifacts.router)
router.include_router(stacks.router)
router.include_router(models.router)
router.include_router(users.router)
