"""The dashboard's reads that the Client has no call for: pages of runs with their step
counts, a run's live state, lineage neighbourhoods and the model registry.

Each function issues a fixed number of queries whatever the page size (no query per
row), and selects only the columns its page shows, so the runs page stays fast with
tens of thousands of runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select

from mlzen.errors import NotFoundError
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore

RUN_STATUSES = ("running", "completed", "failed", "stopped", "crashed")
_RUN_LIST_COLUMNS = (
    t.pipeline_runs.c.id,
    t.pipeline_runs.c.name,
    t.pipeline_runs.c.status,
    t.pipeline_runs.c.stack,
    t.pipeline_runs.c.created_at,
    t.pipeline_runs.c.ended_at,
    t.pipelines.c.name.label("pipeline_name"),
)


def _all(store: MetadataStore, query: Select[Any]) -> list[dict[str, Any]]:
    with store.read() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@dataclass
class RunPage:
    """One page of runs, newest first, and how many runs match the filters."""

    runs: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _filtered(
    query: Select[Any], pipeline: str | None, status: str | None, search: str | None
) -> Select[Any]:
    if pipeline:
        query = query.where(t.pipelines.c.name == pipeline)
    if status:
        query = query.where(t.pipeline_runs.c.status == status)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(t.pipeline_runs.c.name.like(f"%{escaped}%", escape="\\"))
    return query


def run_page(
    store: MetadataStore,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    search: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> RunPage:
    """Runs matching the filters, one page of them, each with ``steps``: step run counts
    by status."""
    page = max(1, page)
    joined = t.pipeline_runs.join(t.pipelines, t.pipelines.c.id == t.pipeline_runs.c.pipeline_id)
    listing = _filtered(select(*_RUN_LIST_COLUMNS).select_from(joined), pipeline, status, search)
    listing = (
        listing.order_by(t.pipeline_runs.c.created_at.desc(), t.pipeline_runs.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    counting = select(func.count()).select_from(joined)
    if not (pipeline or status or search):
        counting = select(func.count()).select_from(t.pipeline_runs)
    counting = _filtered(counting, pipeline, status, search)
    with store.read() as connection:
        runs = [dict(row._mapping) for row in connection.execute(listing)]
        total = connection.execute(counting).scalar() or 0
    counts = step_counts(store, [run["id"] for run in runs])
    for run in runs:
        run["steps"] = counts.get(run["id"], {})
    return RunPage(runs=runs, total=total, page=page, per_page=per_page)


def step_counts(store: MetadataStore, run_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """``{run_id: {status: number of step runs}}`` in one query."""
    ids = list(run_ids)
    if not ids:
        return {}
    query = (
        select(t.step_runs.c.run_id, t.step_runs.c.status, func.count().label("n"))
        .where(t.step_runs.c.run_id.in_(ids))
        .group_by(t.step_runs.c.run_id, t.step_runs.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for row in _all(store, query):
        counts.setdefault(row["run_id"], {})[row["status"]] = row["n"]
    return counts


def run_states(store: MetadataStore, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The live part of several runs: ``{run_id: {status, created_at, ended_at}}``."""
    ids = list(run_ids)
    if not ids:
        return {}
    c = t.pipeline_runs.c
    query = select(c.id, c.status, c.created_at, c.ended_at).where(c.id.in_(ids))
    return {row["id"]: row for row in _all(store, query)}


def step_states(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """A run's step runs without their logs, source or cache key parts (the live view)."""
    c = t.step_runs.c
    query = (
        select(c.id, c.step_id, c.step_name, c.status, c.started_at, c.ended_at, c.attempts)
        .where(c.run_id == run_id)
        .order_by(c.started_at, c.step_id)
    )
    return _all(store, query)


def outputs_of(
    store: MetadataStore, step_run_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """``{step_run_id: [{name, id, artifact, version}]}``: the output artifact versions
    of several step runs, in one query."""
    ids = list(step_run_ids)
    if not ids:
        return {}
    links, v = t.step_run_artifacts.c, t.artifact_versions.c
    query = (
        select(
            links.step_run_id,
            links.name,
            v.id,
            v.version,
            t.artifacts.c.name.label("artifact"),
        )
        .join(t.artifact_versions, v.id == links.artifact_version_id)
        .join(t.artifacts, t.artifacts.c.id == v.artifact_id)
        .where(links.step_run_id.in_(ids), links.direction == "output")
        .order_by(links.name)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in _all(store, query):
        found.setdefault(row["step_run_id"], []).append(row)
    return found


def pipeline_names(store: MetadataStore) -> list[str]:
    """Every pipeline name, alphabetically (for the runs filter)."""
    return [
        row["name"] for row in _all(store, select(t.pipelines.c.name).order_by(t.pipelines.c.name))
    ]


def latest_spec(store: MetadataStore, pipeline_id: str) -> dict[str, Any] | None:
    """The spec of the newest run of a pipeline, if it has one."""
    c = t.pipeline_runs.c
    query = (
        select(c.spec).where(c.pipeline_id == pipeline_id).order_by(c.created_at.desc()).limit(1)
    )
    rows = _all(store, query)
    return rows[0]["spec"] if rows else None


# -- lineage ------------------------------------------------------------------------------


@dataclass
class Lineage:
    """Step runs and artifact versions around one artifact version, and the edges between
    them: ``(step_run_id, artifact_version_id, name)`` for outputs and
    ``(artifact_version_id, step_run_id, name)`` for inputs."""

    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    truncated: bool = False


def lineage(
    store: MetadataStore, artifact_version_id: str, *, depth: int = 3, limit: int = 60
) -> Lineage:
    """The lineage of an artifact version ``depth`` steps up (what it was made from) and
    down (what was made from it), with at most ``limit`` nodes in each direction.

    Each level costs a fixed number of queries, whatever its width.
    """
    found = Lineage()
    found.versions.update(_versions(store, [artifact_version_id]))
    if not found.versions:
        raise NotFoundError(
            f"No artifact version with id '{artifact_version_id}'.",
            artifact_version_id=artifact_version_id,
        )
    for direction in ("up", "down"):
        frontier = {artifact_version_id}
        added = 0
        for _ in range(depth):
            if not frontier or added >= limit:
                found.truncated = found.truncated or bool(frontier)
                break
            frontier, grew = _expand(store, found, frontier, direction)
            added += grew
    return found


def _expand(
    store: MetadataStore, found: Lineage, version_ids: set[str], direction: str
) -> tuple[set[str], int]:
    """One step of lineage from ``version_ids``: their producers (up) or consumers (down),
    and those step runs' inputs (up) or outputs (down)."""
    links = t.step_run_artifacts.c
    if direction == "up":
        step_ids = {
            found.versions[v]["producer_step_run_id"]
            for v in version_ids
            if found.versions[v]["producer_step_run_id"]
        }
    else:
        query = select(links.step_run_id).where(
            links.artifact_version_id.in_(version_ids), links.direction == "input"
        )
        step_ids = {row["step_run_id"] for row in _all(store, query)}
    if not step_ids:
        return set(), 0
    wanted = "input" if direction == "up" else "output"
    rows = _all(
        store,
        select(*t.step_run_artifacts.c).where(links.step_run_id.in_(step_ids)),
    )
    new_steps = step_ids - found.step_runs.keys()
    found.step_runs.update(_step_runs(store, new_steps))
    next_versions: set[str] = set()
    for row in rows:
        version, step_run = row["artifact_version_id"], row["step_run_id"]
        if row["direction"] == "output" and (direction == "down" or version in version_ids):
            found.edges.add((step_run, version, row["name"]))
        if row["direction"] == "input" and (direction == "up" or version in version_ids):
            found.edges.add((version, step_run, row["name"]))
        if row["direction"] == wanted:
            next_versions.add(version)
    fresh = next_versions - found.versions.keys()
    found.versions.update(_versions(store, fresh))
    return fresh, len(new_steps) + len(fresh)


def _versions(store: MetadataStore, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    if not ids:
        return {}
    v = t.artifact_versions.c
    query = (
        select(v.id, v.version, v.data_type, v.producer_step_run_id, t.artifacts.c.name)
        .join(t.artifacts, t.artifacts.c.id == v.artifact_id)
        .where(v.id.in_(ids))
    )
    return {row["id"]: row for row in _all(store, query)}


def _step_runs(store: MetadataStore, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    if not ids:
        return {}
    s = t.step_runs.c
    query = (
        select(s.id, s.step_id, s.step_name, s.status, s.run_id)
        .add_columns(t.pipeline_runs.c.name.label("run"))
        .join(t.pipeline_runs, t.pipeline_runs.c.id == s.run_id)
        .where(s.id.in_(ids))
    )
    return {row["id"]: row for row in _all(store, query)}


def artifact_siblings(
    store: MetadataStore, artifact_id: str, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest versions of an artifact (id, version, created_at, size)."""
    v = t.artifact_versions.c
    query = (
        select(v.id, v.version, v.created_at, v.size, v.content_hash)
        .where(v.artifact_id == artifact_id)
        .order_by(v.version.desc())
        .limit(limit)
    )
    return _all(store, query)


# -- models -------------------------------------------------------------------------------


def list_models(store: MetadataStore) -> list[dict[str, Any]]:
    """Every model with its number of versions, newest version and the versions that
    hold ``staging`` and ``production``."""
    m, mv = t.models.c, t.model_versions.c
    query = (
        select(
            *t.models.c,
            func.count(mv.id).label("version_count"),
            func.max(mv.version).label("latest_version"),
        )
        .outerjoin(t.model_versions, mv.model_id == m.id)
        .group_by(*t.models.c)
        .order_by(m.name)
    )
    models = _all(store, query)
    staged = _all(
        store,
        select(mv.model_id, mv.stage, mv.version).where(mv.stage.in_(("staging", "production"))),
    )
    for model in models:
        model["stages"] = {
            row["stage"]: row["version"] for row in staged if row["model_id"] == model["id"]
        }
    return models


def model_versions(store: MetadataStore, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A model and its versions, newest first, each with its run's name and its linked
    artifacts (``[{name, artifact_version_id, artifact, version}]``)."""
    rows = _all(store, select(*t.models.c).where(t.models.c.name == name))
    if not rows:
        raise NotFoundError(
            f"No model named '{name}'. Models appear when a pipeline runs with model=Model(...).",
            model_name=name,
        )
    model = rows[0]
    mv = t.model_versions.c
    versions = _all(
        store,
        select(*t.model_versions.c, t.pipeline_runs.c.name.label("run_name"))
        .outerjoin(t.pipeline_runs, t.pipeline_runs.c.id == mv.run_id)
        .where(mv.model_id == model["id"])
        .order_by(mv.version.desc()),
    )
    links = t.model_version_artifacts.c
    artifacts = _all(
        store,
        select(
            links.model_version_id,
            links.name,
            links.artifact_version_id,
            t.artifacts.c.name.label("artifact"),
            t.artifact_versions.c.version,
        )
        .join(t.artifact_versions, t.artifact_versions.c.id == links.artifact_version_id)
        .join(t.artifacts, t.artifacts.c.id == t.artifact_versions.c.artifact_id)
        .where(links.model_version_id.in_([v["id"] for v in versions]))
        .order_by(links.name),
    )
    metadata = metadata_of_many(store, "model_version", [v["id"] for v in versions])
    for version in versions:
        version["artifacts"] = [a for a in artifacts if a["model_version_id"] == version["id"]]
        version["metadata"] = metadata.get(version["id"], {})
    return model, versions


def metadata_of_many(
    store: MetadataStore, entity_type: str, entity_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``{entity_id: {key: value}}`` for several entities in one query; a later value for
    a key wins."""
    ids = list(entity_ids)
    if not ids:
        return {}
    m = t.run_metadata.c
    query = (
        select(m.entity_id, m.key, m.value)
        .where(m.entity_type == entity_type, m.entity_id.in_(ids))
        .order_by(m.id)
    )
    found: dict[str, dict[str, Any]] = {}
    for row in _all(store, query):
        found.setdefault(row["entity_id"], {})[row["key"]] = json.loads(row["value"])
    return found


def models_of_artifact(store: MetadataStore, artifact_version_id: str) -> list[dict[str, Any]]:
    """The model versions an artifact version is linked to (model name, version, stage)."""
    links, mv = t.model_version_artifacts.c, t.model_versions.c
    query = (
        select(t.models.c.name.label("model"), mv.version, mv.stage, links.name)
        .join(t.model_versions, mv.id == links.model_version_id)
        .join(t.models, t.models.c.id == mv.model_id)
        .where(links.artifact_version_id == artifact_version_id)
    )
    return _all(store, query)


def visualization(
    store: MetadataStore, artifact_version_id: str, name: str
) -> dict[str, Any] | None:
    """The recorded visualization ``name`` of an artifact version, if there is one, with
    the id of the artifact store its version was recorded in."""
    v = t.artifact_visualizations.c
    versions = t.artifact_versions.c
    query = (
        select(v.name, v.kind, v.uri, versions.artifact_store_id, versions.version)
        .join(t.artifact_versions, versions.id == v.artifact_version_id)
        .where(v.artifact_version_id == artifact_version_id, v.name == name)
    )
    rows = _all(store, query)
    return rows[0] if rows else None


def visualizations(store: MetadataStore, artifact_version_id: str) -> list[dict[str, Any]]:
    """Every visualization recorded for an artifact version, by name."""
    v = t.artifact_visualizations.c
    query = (
        select(v.name, v.kind).where(v.artifact_version_id == artifact_version_id).order_by(v.name)
    )
    return _all(store, query)


def as_json(value: Any) -> str:
    """A value as indented JSON for display (anything not JSON becomes its ``str``)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)
