"""The read side of the metadata store: every query returns plain dicts.

Queries marked ``@remote_read`` run on the team server when the project is logged in
to one (``mlzen.store.operations``); the stack registry's and secrets' queries never
leave the project's own store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select

from mlzen.errors import NotFoundError
from mlzen.store import tables as t
from mlzen.store.metadata import FINISHED_STATUSES, MetadataStore, with_parameters
from mlzen.store.operations import remote_read

_RUN_COLUMNS = [*t.pipeline_runs.c, t.pipelines.c.name.label("pipeline_name")]
_VERSION_COLUMNS = [*t.artifact_versions.c, t.artifacts.c.name.label("name")]


_RUN_NAME_LENGTH = t.pipeline_runs.c.name.type.length or 255
_ID_LENGTH = t.pipeline_runs.c.id.type.length or 32


def _runs() -> Select[Any]:
    return select(*_RUN_COLUMNS).join(
        t.pipelines, t.pipelines.c.id == t.pipeline_runs.c.pipeline_id
    )


def _versions() -> Select[Any]:
    return select(*_VERSION_COLUMNS).join(
        t.artifacts, t.artifacts.c.id == t.artifact_versions.c.artifact_id
    )


def _all(store: MetadataStore, query: Select[Any]) -> list[dict[str, Any]]:
    with store.read() as connection:
        return [with_parameters(dict(row._mapping)) for row in connection.execute(query)]


def _one(store: MetadataStore, query: Select[Any]) -> dict[str, Any] | None:
    rows = _all(store, query.limit(1))
    return rows[0] if rows else None


@remote_read
def list_pipelines(store: MetadataStore) -> list[dict[str, Any]]:
    """Every pipeline with its run count, newest first."""
    query = (
        select(*t.pipelines.c, func.count(t.pipeline_runs.c.id).label("run_count"))
        .outerjoin(t.pipeline_runs, t.pipeline_runs.c.pipeline_id == t.pipelines.c.id)
        .group_by(*t.pipelines.c)
        .order_by(t.pipelines.c.created_at.desc())
    )
    return _all(store, query)


@remote_read
def get_pipeline(store: MetadataStore, name: str) -> dict[str, Any]:
    row = _one(store, select(*t.pipelines.c).where(t.pipelines.c.name == name))
    if row is None:
        raise NotFoundError(
            f"No pipeline named '{name}'. Run it once, or list pipelines with "
            "Client().list_pipelines().",
            pipeline_name=name,
        )
    return row


@remote_read
def find_run(store: MetadataStore, ref: str) -> dict[str, Any]:
    """A run by id, name or unique id prefix."""
    # No run has a reference longer than a name can be: answered without a query, which
    # a huge one could overflow (SQLite refuses LIKE patterns over 50,000 bytes).
    row = None
    if len(ref) <= _RUN_NAME_LENGTH:
        row = _one(
            store,
            _runs().where(or_(t.pipeline_runs.c.id == ref, t.pipeline_runs.c.name == ref)),
        )
    if row is not None:
        return row
    matches = []
    if ref and len(ref) < _ID_LENGTH:
        prefix = t.pipeline_runs.c.id.startswith(ref, autoescape=True)
        matches = _all(store, _runs().where(prefix).limit(2))
    if len(matches) == 1:
        return matches[0]
    hint = "several runs start with it; use more characters" if matches else "no run has it"
    shown = ref if len(ref) <= _RUN_NAME_LENGTH else f"{ref[:40]}... ({len(ref)} characters)"
    raise NotFoundError(
        f"No pipeline run with id or name '{shown}' ({hint}). List runs with "
        "Client().list_pipeline_runs().",
        run=shown,
    )


@remote_read
def list_runs(
    store: MetadataStore,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs, newest first, filtered and paged."""
    query = _filter_runs(_runs(), pipeline, status, created_after, created_before)
    query = query.order_by(t.pipeline_runs.c.created_at.desc(), t.pipeline_runs.c.id.desc())
    return _all(store, query.limit(limit).offset(offset))


@remote_read
def count_runs(
    store: MetadataStore,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> int:
    """How many runs :func:`list_runs` would page through with these filters."""
    query = select(func.count()).select_from(t.pipeline_runs)
    if pipeline is not None:
        query = query.join(t.pipelines, t.pipelines.c.id == t.pipeline_runs.c.pipeline_id)
    query = _filter_runs(query, pipeline, status, created_after, created_before)
    with store.read() as connection:
        return int(connection.execute(query).scalar() or 0)


def _filter_runs(
    query: Select[Any],
    pipeline: str | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> Select[Any]:
    if pipeline is not None:
        query = query.where(t.pipelines.c.name == pipeline)
    if status is not None:
        query = query.where(t.pipeline_runs.c.status == status)
    if created_after is not None:
        query = query.where(t.pipeline_runs.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(t.pipeline_runs.c.created_at < created_before)
    return query


@remote_read
def step_runs_of(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """A run's step runs in the order they started."""
    query = (
        select(*t.step_runs.c)
        .where(t.step_runs.c.run_id == run_id)
        .order_by(t.step_runs.c.started_at, t.step_runs.c.step_id)
    )
    return _all(store, query)


@remote_read
def get_step_run(store: MetadataStore, step_run_id: str) -> dict[str, Any]:
    row = _one(store, select(*t.step_runs.c).where(t.step_runs.c.id == step_run_id))
    if row is None:
        raise NotFoundError(f"No step run with id '{step_run_id}'.", step_run_id=step_run_id)
    return row


@remote_read
def edges_of(
    store: MetadataStore, step_run_ids: Iterable[str]
) -> dict[str, dict[str, dict[str, str]]]:
    """``{step_run_id: {"input"|"output": {name: artifact_version_id}}}``."""
    ids = list(step_run_ids)
    edges: dict[str, dict[str, dict[str, str]]] = {i: {"input": {}, "output": {}} for i in ids}
    if not ids:
        return edges
    query = select(*t.step_run_artifacts.c).where(t.step_run_artifacts.c.step_run_id.in_(ids))
    for row in _all(store, query):
        edges[row["step_run_id"]][row["direction"]][row["name"]] = row["artifact_version_id"]
    return edges


@remote_read
def find_cache_hits(
    store: MetadataStore, cache_key: str, artifact_store_id: str | None = None
) -> list[dict[str, Any]]:
    """Successful step runs with this cache key, newest first, with their outputs.

    With ``artifact_store_id``, step runs with an output recorded in another artifact
    store are left out (they cannot be hits there).
    """
    query = (
        select(t.step_runs.c.id)
        .where(t.step_runs.c.cache_key == cache_key, t.step_runs.c.status.in_(FINISHED_STATUSES))
        .order_by(t.step_runs.c.started_at.desc())
        .limit(5)
    )
    if artifact_store_id is not None:
        edge, version = t.step_run_artifacts.c, t.artifact_versions.c
        # Correlated, so only the edges of the few step runs with this key are read.
        elsewhere = exists().where(
            edge.step_run_id == t.step_runs.c.id,
            edge.direction == "output",
            version.id == edge.artifact_version_id,
            version.artifact_store_id.is_not(None),
            version.artifact_store_id != artifact_store_id,
        )
        query = query.where(~elsewhere)
    ids = [row["id"] for row in _all(store, query)]
    edges = edges_of(store, ids)
    versions = get_artifact_versions(
        store, [v for e in edges.values() for v in e["output"].values()]
    )
    return [
        {"id": i, "outputs": {name: versions[v] for name, v in edges[i]["output"].items()}}
        for i in ids
    ]


@remote_read
def get_artifact_versions(store: MetadataStore, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    if not ids:
        return {}
    rows = _all(store, _versions().where(t.artifact_versions.c.id.in_(ids)))
    return {row["id"]: row for row in rows}


@remote_read
def find_artifact_version(
    store: MetadataStore, name_or_id: str, version: int | str | None = None
) -> dict[str, Any]:
    """An artifact version by artifact name (latest, or ``version``) or by id."""
    query = _versions().where(t.artifacts.c.name == name_or_id)
    if version is not None:
        query = query.where(t.artifact_versions.c.version == int(version))
    row = _one(store, query.order_by(t.artifact_versions.c.version.desc()))
    if row is None and version is None:
        row = _one(store, _versions().where(t.artifact_versions.c.id == name_or_id))
    if row is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFoundError(
            f"No {which}artifact '{name_or_id}'. List artifacts with "
            "Client().list_artifact_versions().",
            artifact_name=name_or_id,
            version=version,
        )
    return row


@remote_read
def count_artifact_versions(store: MetadataStore, name: str | None = None) -> int:
    """How many versions :func:`list_artifact_versions` would page through."""
    query = select(func.count()).select_from(t.artifact_versions)
    if name is not None:
        query = query.join(
            t.artifacts, t.artifacts.c.id == t.artifact_versions.c.artifact_id
        ).where(t.artifacts.c.name == name)
    with store.read() as connection:
        return int(connection.execute(query).scalar() or 0)


@remote_read
def list_artifact_versions(
    store: MetadataStore, name: str | None = None, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Artifact versions, newest first, optionally of one artifact."""
    query = _versions()
    if name is not None:
        query = query.where(t.artifacts.c.name == name)
    query = query.order_by(
        t.artifact_versions.c.created_at.desc(), t.artifact_versions.c.version.desc()
    )
    return _all(store, query.limit(limit).offset(offset))


@remote_read
def list_artifacts(store: MetadataStore) -> list[dict[str, Any]]:
    query = (
        select(*t.artifacts.c, func.max(t.artifact_versions.c.version).label("latest_version"))
        .outerjoin(t.artifact_versions, t.artifact_versions.c.artifact_id == t.artifacts.c.id)
        .group_by(*t.artifacts.c)
        .order_by(t.artifacts.c.name)
    )
    return _all(store, query)


@remote_read
def consumers_of(store: MetadataStore, artifact_version_id: str) -> list[dict[str, Any]]:
    """Step runs that read this artifact version as an input."""
    query = (
        select(*t.step_runs.c, t.step_run_artifacts.c.name.label("input_name"))
        .join(t.step_run_artifacts, t.step_run_artifacts.c.step_run_id == t.step_runs.c.id)
        .where(
            t.step_run_artifacts.c.artifact_version_id == artifact_version_id,
            t.step_run_artifacts.c.direction == "input",
        )
        .order_by(t.step_runs.c.started_at)
    )
    return _all(store, query)


@remote_read
def metadata_of(store: MetadataStore, entity_type: str, entity_id: str) -> dict[str, Any]:
    """Key/value metadata of one entity; a later value for a key wins."""
    query = (
        select(t.run_metadata.c.key, t.run_metadata.c.value)
        .where(t.run_metadata.c.entity_type == entity_type, t.run_metadata.c.entity_id == entity_id)
        .order_by(t.run_metadata.c.id)
    )
    return {row["key"]: json.loads(row["value"]) for row in _all(store, query)}


@remote_read
def counts(store: MetadataStore) -> dict[str, Any]:
    """How many pipelines, runs (and runs per status), artifacts and versions there are."""
    with store.read() as connection:
        total = {
            name: connection.execute(select(func.count()).select_from(table)).scalar() or 0
            for name, table in (
                ("pipelines", t.pipelines),
                ("runs", t.pipeline_runs),
                ("artifacts", t.artifacts),
                ("artifact_versions", t.artifact_versions),
            )
        }
        by_status = connection.execute(
            select(t.pipeline_runs.c.status, func.count()).group_by(t.pipeline_runs.c.status)
        ).all()
    return {**total, "runs_by_status": {status: n for status, n in sorted(by_status)}}


@remote_read
def get_artifact(store: MetadataStore, name: str) -> dict[str, Any]:
    """The artifact (the name, not a version) called ``name``."""
    row = _one(store, select(*t.artifacts.c).where(t.artifacts.c.name == name))
    if row is None:
        raise NotFoundError(
            f"No artifact named '{name}'. List artifacts with Client().list_artifacts().",
            artifact_name=name,
        )
    return row


@remote_read
def artifact_summaries(store: MetadataStore, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Every artifact by name with its latest version, version count, total size of its
    versions and when its newest version was made."""
    versions = t.artifact_versions.c
    query = (
        select(
            *t.artifacts.c,
            func.max(versions.version).label("latest_version"),
            func.count(versions.id).label("version_count"),
            func.coalesce(func.sum(versions.size), 0).label("total_size"),
            func.max(versions.created_at).label("updated_at"),
        )
        .outerjoin(t.artifact_versions, versions.artifact_id == t.artifacts.c.id)
        .group_by(*t.artifacts.c)
        .order_by(t.artifacts.c.name)
    )
    if limit is not None:
        query = query.limit(limit)
    return _all(store, query)


@remote_read
def step_run_origins(
    store: MetadataStore, step_run_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``{step_run_id: {step_run_id, step_id, step_name, run_id, run_name}}``."""
    ids = list(set(step_run_ids))
    if not ids:
        return {}
    query = (
        select(
            t.step_runs.c.id.label("step_run_id"),
            t.step_runs.c.step_id,
            t.step_runs.c.step_name,
            t.step_runs.c.run_id,
            t.pipeline_runs.c.name.label("run_name"),
        )
        .join(t.pipeline_runs, t.pipeline_runs.c.id == t.step_runs.c.run_id)
        .where(t.step_runs.c.id.in_(ids))
    )
    return {row["step_run_id"]: row for row in _all(store, query)}


@remote_read
def referenced_artifact_folders(store: MetadataStore) -> list[dict[str, Any]]:
    """Every distinct ``(uri, content_hash)`` that an artifact version records, and the
    folder of every recorded visualization (its URI minus the file name; the folder's
    name is its content hash)."""
    query = select(t.artifact_versions.c.uri, t.artifact_versions.c.content_hash).distinct()
    folders = _all(store, query)
    uris = _all(store, select(t.artifact_visualizations.c.uri).distinct())
    visual = {row["uri"].rstrip("/").rpartition("/")[0] for row in uris}
    folders += [{"uri": f, "content_hash": f.rpartition("/")[2]} for f in sorted(visual)]
    return folders


@remote_read
def visualizations_of(store: MetadataStore, artifact_version_id: str) -> list[dict[str, Any]]:
    """The visualizations recorded for an artifact version (``id``, ``name``, ``kind``,
    ``uri``, ``created_at``), by name."""
    v = t.artifact_visualizations.c
    query = (
        select(v.id, v.name, v.kind, v.uri, v.created_at)
        .where(v.artifact_version_id == artifact_version_id)
        .order_by(v.name)
    )
    return _all(store, query)


# -- cache explanations (`mlzen runs explain`) ------------------------------------------


@remote_read
def previous_step_run(
    store: MetadataStore, *, run_id: str, step_id: str, step_name: str, before: datetime
) -> dict[str, Any] | None:
    """The closest earlier run of a step invocation in another pipeline run.

    Same invocation id and step name, started before ``before``: the most recent
    successful one, else the most recent one of any status.
    """
    query = select(*t.step_runs.c).where(
        t.step_runs.c.step_id == step_id,
        t.step_runs.c.step_name == step_name,
        t.step_runs.c.run_id != run_id,
        t.step_runs.c.started_at < before,
    )
    newest_first = query.order_by(t.step_runs.c.started_at.desc(), t.step_runs.c.id.desc())
    successful = _one(store, newest_first.where(t.step_runs.c.status.in_(FINISHED_STATUSES)))
    return successful or _one(store, newest_first)


@remote_read
def earlier_step_run_with_key(
    store: MetadataStore, *, run_id: str, cache_key: str, before: datetime
) -> dict[str, Any] | None:
    """The most recent successful step run in another pipeline run with this cache key,
    started before ``before``."""
    query = (
        select(*t.step_runs.c)
        .where(
            t.step_runs.c.cache_key == cache_key,
            t.step_runs.c.status.in_(FINISHED_STATUSES),
            t.step_runs.c.run_id != run_id,
            t.step_runs.c.started_at < before,
        )
        .order_by(t.step_runs.c.started_at.desc(), t.step_runs.c.id.desc())
    )
    return _one(store, query)


# -- the stack registry -----------------------------------------------------------------


def get_project_setting(store: MetadataStore, key: str) -> str | None:
    """A project-wide setting stored in the registry (e.g. ``active_stack``)."""
    with store.read() as connection:
        value = connection.execute(
            select(t.project_settings.c.value).where(t.project_settings.c.key == key)
        ).scalar()
    return None if value is None else str(value)


def list_components(store: MetadataStore, kind: str | None = None) -> list[dict[str, Any]]:
    """Registered stack components, by kind then name."""
    query = select(*t.stack_components.c).order_by(
        t.stack_components.c.kind, t.stack_components.c.name
    )
    if kind is not None:
        query = query.where(t.stack_components.c.kind == kind)
    return _all(store, query)


def get_component(store: MetadataStore, kind: str, name: str) -> dict[str, Any] | None:
    c = t.stack_components.c
    return _one(store, select(*t.stack_components.c).where(c.kind == kind, c.name == name))


def list_stacks(store: MetadataStore) -> list[dict[str, Any]]:
    """Registered stacks, by name."""
    return _all(store, select(*t.stacks.c).order_by(t.stacks.c.name))


def get_stack(store: MetadataStore, name: str) -> dict[str, Any] | None:
    return _one(store, select(*t.stacks.c).where(t.stacks.c.name == name))


def list_secret_rows(store: MetadataStore) -> list[dict[str, Any]]:
    """Every stored secret (name, ciphertext, times), by name."""
    return _all(store, select(*t.secrets.c).order_by(t.secrets.c.name))


def get_secret_row(store: MetadataStore, name: str) -> dict[str, Any] | None:
    return _one(store, select(*t.secrets.c).where(t.secrets.c.name == name))
