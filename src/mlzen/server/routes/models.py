"""``/api/v1/models``: models, their versions with stages and artifacts; promotion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from mlzen.model_versions import ModelVersion, RegisteredModel
from mlzen.server.auth import EditorUser, require_viewer
from mlzen.server.deps import ClientDep
from mlzen.server.routes.runs import Limit, Offset, version_ref
from mlzen.server.schemas import (
    ModelOut,
    ModelVersionDetail,
    ModelVersionOut,
    Page,
    PromoteRequest,
)

router = APIRouter(prefix="/models", dependencies=[Depends(require_viewer)], tags=["models"])

VersionRef = Annotated[
    str,
    Path(description="A number, or latest, staging, production or archived.", max_length=64),
]


def model_out(model: RegisteredModel) -> ModelOut:
    return ModelOut(
        id=model.id,
        name=model.name,
        description=model.description,
        created_at=model.created_at,
        version_count=model.version_count,
        latest_version=model.latest_version,
        staging_version=model.staging_version,
        production_version=model.production_version,
    )


def model_version_out(version: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        id=version.id,
        model_name=version.name,
        number=version.number,
        stage=version.stage,
        description=version.description,
        run_id=version.run_id,
        created_at=version.created_at,
        updated_at=version.updated_at,
    )


@router.get("", response_model=Page[ModelOut])
def list_models(
    client: ClientDep,
    name: Annotated[str | None, Query(description="Only names containing this.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ModelOut]:
    """Models by name, with version counts and the versions in staging and production."""
    models = [m for m in client.list_models() if not name or name in m.name]
    items = [model_out(m) for m in models[offset : offset + limit]]
    return Page(items=items, total=len(models), limit=limit, offset=offset)


@router.get("/{name}", response_model=ModelOut)
def get_model(name: str, client: ClientDep) -> ModelOut:
    """One model."""
    return model_out(client.get_model(name))


@router.get("/{name}/versions", response_model=Page[ModelVersionOut])
def list_model_versions(
    name: str,
    client: ClientDep,
    stage: Annotated[str | None, Query(description="Only versions in this stage.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ModelVersionOut]:
    """A model's versions, newest first."""
    versions = [v for v in client.list_model_versions(name) if not stage or v.stage == stage]
    items = [model_version_out(v) for v in versions[offset : offset + limit]]
    return Page(items=items, total=len(versions), limit=limit, offset=offset)


@router.get("/{name}/versions/{version}", response_model=ModelVersionDetail)
def get_model_version(name: str, version: VersionRef, client: ClientDep) -> ModelVersionDetail:
    """One version with its linked artifacts and metadata."""
    found = client.get_model_version(name, version)
    return ModelVersionDetail(
        **model_version_out(found).model_dump(),
        artifacts={link: version_ref(a) for link, a in found.artifacts.items()},
        metadata=found.metadata,
    )


@router.post("/{name}/versions/{version}/promote", response_model=ModelVersionOut)
def promote_model_version(
    name: str, version: VersionRef, body: PromoteRequest, client: ClientDep, user: EditorUser
) -> ModelVersionOut:
    """Move a version to a stage (editor). Taking a stage another version holds needs
    ``force`` (that version is archived); without it the answer is 409."""
    found = client.get_model_version(name, version)
    return model_version_out(found.promote(body.stage, force=body.force))
