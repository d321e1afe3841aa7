"""``/api/v1``: artifacts, artifact versions, previews, visualizations, stored files and
lineage."""

from __future__ import annotations

import io
import zipfile
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse

from mlzen.client import ArtifactVersion, Client, StepRun
from mlzen.errors import ArtifactError, NotFoundError
from mlzen.server import files, trust
from mlzen.server.auth import require_viewer
from mlzen.server.deps import ArtifactStoreDep, ClientDep
from mlzen.server.preview import preview
from mlzen.server.routes.runs import Limit, Offset
from mlzen.server.schemas import (
    ArtifactOut,
    ArtifactVersionDetail,
    ArtifactVersionOut,
    Lineage,
    LineageEdge,
    LineageNode,
    Page,
    Preview,
    StepRunRef,
    StoredFile,
    VisualizationOut,
)
from mlzen.store import queries

router = APIRouter(dependencies=[Depends(require_viewer)], tags=["artifacts"])

MAX_PREVIEW_BYTES = 256 * 1024 * 1024
MAX_ZIP_BYTES = 1024 * 1024 * 1024
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "png": "image/png",
    "svg": "image/svg+xml",
    "csv": "text/csv; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}


def version_out(version: ArtifactVersion) -> ArtifactVersionOut:
    return ArtifactVersionOut(
        id=version.id,
        name=version.name,
        version=version.version,
        data_type=version.data_type,
        size=version.size,
        uri=version.uri,
        content_hash=version.content_hash,
        materializer=version.materializer,
        created_at=version.created_at,
        producer_step_run_id=version.producer_step_run_id,
    )


def step_ref(step: StepRun) -> StepRunRef:
    return StepRunRef(
        id=step.id,
        step_id=step.name,
        step_name=step.step_name,
        status=step.status,
        run_id=step.run_id,
    )


def _version(client: Client, version_id: str) -> ArtifactVersion:
    """An artifact version by id only (names are not ids here)."""
    rows = queries.get_artifact_versions(client.store, [version_id])
    if version_id not in rows:
        raise NotFoundError(
            f"No artifact version with id '{version_id}'. List versions at "
            "/api/v1/artifact-versions.",
            artifact_version_id=version_id,
        )
    return ArtifactVersion(client, rows[version_id])


@router.get("/artifacts", response_model=Page[ArtifactOut])
def list_artifacts(
    client: ClientDep,
    name: Annotated[str | None, Query(description="Only names containing this.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ArtifactOut]:
    """Artifacts by name, each with its latest version, version count and total size."""
    rows = queries.artifact_summaries(client.store)
    if name:
        rows = [row for row in rows if name in row["name"]]
    items = [ArtifactOut.model_validate(row) for row in rows[offset : offset + limit]]
    return Page(items=items, total=len(rows), limit=limit, offset=offset)


@router.get("/artifact-versions", response_model=Page[ArtifactVersionOut])
def list_artifact_versions(
    client: ClientDep,
    name: Annotated[str | None, Query(description="Only versions of this artifact.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ArtifactVersionOut]:
    """Artifact versions, newest first."""
    versions = client.list_artifact_versions(name, limit=limit, offset=offset)
    total = queries.count_artifact_versions(client.store, name)
    return Page(items=[version_out(v) for v in versions], total=total, limit=limit, offset=offset)


@router.get("/artifact-versions/{version_id}", response_model=ArtifactVersionDetail)
def get_artifact_version(version_id: str, client: ClientDep) -> ArtifactVersionDetail:
    """One version: metadata, producer and consumers, and its visualizations."""
    version = _version(client, version_id)
    producer = version.producer
    visuals = queries.visualizations_of(client.store, version.id)
    return ArtifactVersionDetail(
        **version_out(version).model_dump(),
        metadata=version.metadata,
        producer=step_ref(producer) if producer else None,
        consumers=[step_ref(s) for s in version.consumers],
        visualizations=[
            VisualizationOut(
                name=v["name"],
                kind=v["kind"],
                url=f"/api/v1/artifact-versions/{version.id}/visualizations/{v['name']}",
            )
            for v in visuals
        ],
    )


@router.get(
    "/artifact-versions/{version_id}/visualizations/{name}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def get_visualization(
    version_id: str, name: str, client: ClientDep, artifacts: ArtifactStoreDep
) -> FileResponse:
    """The file of one visualization (HTML, PNG, SVG, CSV or Markdown)."""
    version = _version(client, version_id)
    for row in queries.visualizations_of(client.store, version.id):
        if row["name"] == name:
            path = files.visualization_file(artifacts, version, row["uri"])
            return FileResponse(
                path,
                media_type=MEDIA_TYPES.get(row["kind"], "application/octet-stream"),
                # Visualizations are user content: never let their HTML run as this site.
                headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
            )
    raise NotFoundError(
        f"Artifact version {version.name}:{version.version} has no visualization '{name}'.",
        artifact_version_id=version.id,
        visualization=name,
    )


@router.get("/artifact-versions/{version_id}/preview", response_model=Preview)
async def preview_artifact_version(
    version_id: str,
    client: ClientDep,
    rows: Annotated[int, Query(ge=1, le=1000, description="Rows of a table to show.")] = 20,
) -> Preview:
    """A bounded preview: a table's first rows, or the start of the value's text. Values
    whose format can run code when loaded (pickle, joblib, ...) are not loaded: the
    answer's kind is ``none`` and its text says why."""
    version = await run_in_threadpool(_version, client, version_id)
    if not trust.loadable(version.materializer):
        return Preview(
            kind="none",
            data_type=version.data_type,
            text=trust.refusal(version.name, version.version, version.materializer),
            truncated=False,
        )
    if version.size > MAX_PREVIEW_BYTES:
        return Preview(
            kind="text",
            data_type=version.data_type,
            text=f"{version.size} bytes: too large to preview. Download its files instead.",
            truncated=True,
        )
    value = await run_in_threadpool(version.load)
    return await run_in_threadpool(preview, value, version.data_type, rows)


@router.get("/artifact-versions/{version_id}/files", response_model=list[StoredFile])
def list_artifact_files(
    version_id: str, client: ClientDep, artifacts: ArtifactStoreDep
) -> list[StoredFile]:
    """The stored files of a version (paths relative to its folder)."""
    version = _version(client, version_id)
    folder = files.artifact_folder(artifacts, version)
    return [StoredFile(path=p, size=s) for p, s in files.list_files(folder)]


@router.get(
    "/artifact-versions/{version_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_artifact_file(
    version_id: str, path: str, client: ClientDep, artifacts: ArtifactStoreDep
) -> FileResponse:
    """One stored file of a version. Paths outside the version's folder are refused."""
    version = _version(client, version_id)
    folder = files.artifact_folder(artifacts, version)
    target = files.contained_file(folder, path, uri=f"{version.name}:{version.version}")
    return FileResponse(
        target,
        media_type="application/octet-stream",
        filename=target.name,
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.get(
    "/artifact-versions/{version_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def download_artifact_version(
    version_id: str, client: ClientDep, artifacts: ArtifactStoreDep
) -> StreamingResponse:
    """Every stored file of a version, as a zip named ``<name>-<version>.zip``."""
    version = _version(client, version_id)
    folder = files.artifact_folder(artifacts, version)
    listed = files.list_files(folder)
    if sum(size for _, size in listed) > MAX_ZIP_BYTES:
        raise ArtifactError(
            f"Artifact version {version.name}:{version.version} is larger than "
            f"{MAX_ZIP_BYTES} bytes. Download its files one by one.",
            artifact_version_id=version.id,
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, _size in listed:
            archive.write(
                files.contained_file(folder, relative, uri=f"{version.name}:{version.version}"),
                relative,
            )
    buffer.seek(0)
    filename = f"{version.name}-{version.version}.zip"
    return StreamingResponse(
        buffer,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/artifact-versions/{version_id}/lineage", response_model=Lineage)
def artifact_lineage(
    version_id: str,
    client: ClientDep,
    depth: Annotated[int, Query(ge=1, le=10, description="Hops up and down.")] = 3,
) -> Lineage:
    """The graph of step runs and artifact versions ``depth`` hops upstream (producers
    and their inputs) and downstream (consumers and their outputs)."""
    root = _version(client, version_id)
    nodes: dict[str, LineageNode] = {}
    edges: set[tuple[str, str, str]] = set()

    def add_version(version: ArtifactVersion) -> None:
        nodes.setdefault(
            version.id,
            LineageNode(
                id=version.id,
                kind="artifact_version",
                label=f"{version.name}:{version.version}",
            ),
        )

    def add_step(step: StepRun) -> None:
        nodes.setdefault(
            step.id,
            LineageNode(
                id=step.id, kind="step_run", label=step.name, status=step.status, run_id=step.run_id
            ),
        )

    add_version(root)
    frontier = [root]
    for _ in range(depth):  # upstream
        following: list[ArtifactVersion] = []
        for version in frontier:
            producer = version.producer
            if producer is None:
                continue
            add_step(producer)
            edges.add((producer.id, version.id, _output_name(producer, version)))
            for name, source in producer.inputs.items():
                if source.id not in nodes:
                    following.append(source)
                add_version(source)
                edges.add((source.id, producer.id, name))
        frontier = following
    frontier = [root]
    for _ in range(depth):  # downstream
        following = []
        for version in frontier:
            for consumer in version.consumers:
                add_step(consumer)
                for name, used in consumer.inputs.items():
                    if used.id == version.id:
                        edges.add((version.id, consumer.id, name))
                for name, output in consumer.outputs.items():
                    if output.id not in nodes:
                        following.append(output)
                    add_version(output)
                    edges.add((consumer.id, output.id, name))
        frontier = following
    return Lineage(
        root=root.id,
        nodes=list(nodes.values()),
        edges=[LineageEdge(source=s, target=t, name=n) for s, t, n in sorted(edges)],
    )


def _output_name(step: StepRun, version: ArtifactVersion) -> str:
    for name, output in step.outputs.items():
        if output.id == version.id:
            return name
    return version.name
