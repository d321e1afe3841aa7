"""Models and model versions in the metadata store: resolving, creating, promoting, reading.

A run that names ``Model("churn")`` gets one new version of ``churn`` however many of its
steps (threads, worker processes, Ray tasks) ask for it at once: the version is found or
created in one write transaction that locks the model's row (``SELECT ... FOR UPDATE``
on PostgreSQL and MySQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway), and
the unique constraints on model names and ``(model, version)`` turn any race that slips
past the lock into an ``IntegrityError`` that is retried.

The public functions are store operations (``mlzen.store.operations``): for a project
logged in to a team server they run on the server.

Links from a version to artifact versions are written by
``MetadataStore.finish_step_run`` / ``start_step_run``, in the transaction that records
the step's outputs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, case, func, select, update
from sqlalchemy.exc import IntegrityError

from mlzen.errors import ConfigError, NotFoundError, StageConflictError, StoreError
from mlzen.model import EXCLUSIVE_STAGES, STAGES
from mlzen.names import check_name
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, next_version, safe_url, utcnow
from mlzen.store.operations import remote_read, remote_write

_RETRIES = 10
# Version numbers are 64-bit integers in every database mlzen supports.
_LARGEST_VERSION = 2**63 - 1
_VERSION_COLUMNS = [*t.model_versions.c, t.models.c.name.label("model_name")]


def _versions() -> Select[Any]:
    return select(*_VERSION_COLUMNS).join(t.models, t.models.c.id == t.model_versions.c.model_id)


def _all(store: MetadataStore, query: Select[Any]) -> list[dict[str, Any]]:
    with store.read() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


# -- resolving and creating versions -----------------------------------------------------


# Idempotent: asked again for the same run, it returns the version it made.
@remote_write(idempotent=True)
def resolve_version(
    store: MetadataStore,
    name: str,
    version: str | None,
    *,
    run_id: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The model version a run links to, as a row with ``model_name``.

    Args:
        store: the metadata store.
        name: the model.
        version: ``None`` for the run's own new version (created, with the model, on
            first use); else a number, ``"latest"``, ``"staging"`` or ``"production"``.
        run_id: the run whose version ``None`` means.
        description: recorded with a model or version this call creates.

    Raises:
        NotFoundError: an existing version was asked for and there is none; the
            message lists the model's versions and stages.
    """
    if version is not None:
        return find_version(store, name, version)
    if run_id is None:
        raise ConfigError(
            f"A new version of model '{name}' is created for a pipeline run; none is "
            "running. Name an existing version, e.g. Model(name, version='latest').",
            model_name=name,
        )
    check_name("model", name)
    # Most steps of a run find the version another step made: a read, no write lock.
    made = _all(
        store,
        _versions().where(t.models.c.name == name, t.model_versions.c.run_id == run_id),
    )
    if made:
        return made[0]
    for _ in range(_RETRIES):
        try:
            with store.write() as connection:
                return _run_version(connection, name, run_id, description)
        except IntegrityError:
            # Another transaction created the model or took the version number first;
            # the next attempt sees its committed row.
            continue
    raise StoreError(
        f"Could not create a version of model '{name}' in the metadata store at "
        f"'{safe_url(store.url)}' after {_RETRIES} attempts. Retry the run.",
        model_name=name,
        store_url=safe_url(store.url),
    )


def _run_version(
    connection: Connection, name: str, run_id: str, description: str | None
) -> dict[str, Any]:
    now = utcnow()
    model_id = connection.execute(
        select(t.models.c.id).where(t.models.c.name == name).with_for_update()
    ).scalar()
    if model_id is None:
        model_id = new_id()
        connection.execute(
            t.models.insert().values(
                id=model_id, name=name, description=description, created_at=now
            )
        )
    existing = connection.execute(
        _versions().where(
            t.model_versions.c.model_id == model_id, t.model_versions.c.run_id == run_id
        )
    ).first()
    if existing is not None:
        return dict(existing._mapping)
    number = next_version(
        connection, t.model_versions.c.version, t.model_versions.c.model_id == model_id
    )
    version_id = new_id()
    connection.execute(
        t.model_versions.insert().values(
            id=version_id,
            model_id=model_id,
            version=number,
            stage="none",
            description=description,
            run_id=run_id,
            created_at=now,
            updated_at=now,
        )
    )
    row = connection.execute(_versions().where(t.model_versions.c.id == version_id)).first()
    assert row is not None
    return dict(row._mapping)


@remote_read
def find_version(
    store: MetadataStore, name_or_id: str, version: str | int | None
) -> dict[str, Any]:
    """A version of model ``name_or_id`` by number, ``latest`` or stage; or a version by
    id when ``version`` is ``None`` and no model has that name (then ``latest``).

    Raises:
        NotFoundError: no such model or version; lists what exists.
    """
    model = _model_row(store, name_or_id)
    if model is None:
        if version is None:
            rows = _all(store, _versions().where(t.model_versions.c.id == name_or_id))
            if rows:
                return rows[0]
        raise _model_not_found(store, name_or_id)
    wanted = "latest" if version is None else str(version).strip().lower()
    query = _versions().where(t.model_versions.c.model_id == model["id"])
    if wanted == "latest":
        query = query.order_by(t.model_versions.c.version.desc())
    elif wanted in STAGES:
        query = query.where(t.model_versions.c.stage == wanted).order_by(
            t.model_versions.c.version.desc()
        )
    elif wanted.isascii() and wanted.isdigit():
        number = int(wanted)
        if number > _LARGEST_VERSION:  # more than the column holds: no such version
            raise _version_not_found(store, model, wanted)
        query = query.where(t.model_versions.c.version == number)
    else:
        raise ConfigError(
            f"'{version}' is not a version of model '{model['name']}'. Use a number, "
            f"'latest' or a stage ({', '.join(STAGES)}).",
            model_name=model["name"],
            version=version,
        )
    rows = _all(store, query.limit(1))
    if not rows:
        raise _version_not_found(store, model, wanted)
    return rows[0]


def _model_row(store: MetadataStore, name: str) -> dict[str, Any] | None:
    rows = _all(store, select(*t.models.c).where(t.models.c.name == name))
    return rows[0] if rows else None


def _model_not_found(store: MetadataStore, name: str) -> NotFoundError:
    names = [row["name"] for row in _all(store, select(t.models.c.name).order_by(t.models.c.name))]
    known = f"Known models: {', '.join(names)}." if names else "There are no models yet."
    return NotFoundError(
        f"No model named '{name}'. {known} A run creates a model when its pipeline or a "
        f"step has model=Model('{name}').",
        model_name=name,
    )


def _version_not_found(store: MetadataStore, model: dict[str, Any], wanted: str) -> NotFoundError:
    versions = list_versions(store, model["name"])
    if versions:
        listed = ", ".join(
            f"{v['version']}" + (f" ({v['stage']})" if v["stage"] != "none" else "")
            for v in reversed(versions)
        )
        known = f"Its versions: {listed}."
    else:
        known = "It has no versions yet."
    what = f"in stage '{wanted}'" if wanted in STAGES else f"'{wanted}'"
    fix = (
        f" Promote one with Client().get_model_version('{model['name']}', N).promote('{wanted}')."
        if wanted in STAGES
        else ""
    )
    return NotFoundError(
        f"Model '{model['name']}' has no version {what}. {known}{fix}",
        model_name=model["name"],
        version=wanted,
    )


# -- promotion ---------------------------------------------------------------------------


# Idempotent: promoting again to the stage it now holds changes nothing.
@remote_write(idempotent=True)
def promote(
    store: MetadataStore, version_id: str, stage: str, *, force: bool = False
) -> dict[str, Any]:
    """Move a version to ``stage``; returns ``{"version": row, "archived": row | None}``.

    ``staging`` and ``production`` are held by at most one version per model. Taking
    one from another version archives that version, and needs ``force``: without it,
    nothing changes and ``StageConflictError`` names the holder.

    Raises:
        ConfigError: ``stage`` is not one of ``STAGES``.
        NotFoundError: no version with this id.
        StageConflictError: another version holds ``stage`` and ``force`` is false.
    """
    stage = str(stage).strip().lower()
    if stage not in STAGES:
        raise ConfigError(
            f"'{stage}' is not a model stage. Use one of {', '.join(STAGES)}.",
            stage=stage,
        )
    now = utcnow()
    with store.write() as connection:
        found = connection.execute(_versions().where(t.model_versions.c.id == version_id)).first()
        if found is None:
            raise NotFoundError(
                f"No model version with id '{version_id}'.", model_version_id=version_id
            )
        row = dict(found._mapping)
        # Serialise promotions of one model, so two can never both take a stage.
        connection.execute(
            select(t.models.c.id).where(t.models.c.id == row["model_id"]).with_for_update()
        )
        archived = None
        if stage in EXCLUSIVE_STAGES:
            holder = connection.execute(
                _versions().where(
                    t.model_versions.c.model_id == row["model_id"],
                    t.model_versions.c.stage == stage,
                    t.model_versions.c.id != version_id,
                )
            ).first()
            if holder is not None:
                archived = dict(holder._mapping)
                if not force:
                    name, number = row["model_name"], row["version"]
                    raise StageConflictError(
                        f"Version {archived['version']} of model '{name}' is in {stage}. "
                        f"Pass force=True (CLI: --force) to promote version {number} to "
                        f"{stage} and archive version {archived['version']}.",
                        model_name=name,
                        version=number,
                        stage=stage,
                        holder=archived["version"],
                    )
                connection.execute(
                    update(t.model_versions)
                    .where(t.model_versions.c.id == archived["id"])
                    .values(stage="archived", updated_at=now)
                )
                archived.update(stage="archived", updated_at=now)
        connection.execute(
            update(t.model_versions)
            .where(t.model_versions.c.id == version_id)
            .values(stage=stage, updated_at=now)
        )
        row.update(stage=stage, updated_at=now)
    return {"version": row, "archived": archived}


# -- reads -------------------------------------------------------------------------------


@remote_read
def list_models(store: MetadataStore) -> list[dict[str, Any]]:
    """Every model by name, with ``version_count``, ``latest_version``, and the numbers
    of its ``staging_version`` and ``production_version`` (``None`` when no version
    holds the stage)."""
    v = t.model_versions.c
    query = (
        select(
            *t.models.c,
            func.count(v.id).label("version_count"),
            func.max(v.version).label("latest_version"),
            func.max(case((v.stage == "staging", v.version))).label("staging_version"),
            func.max(case((v.stage == "production", v.version))).label("production_version"),
        )
        .outerjoin(t.model_versions, v.model_id == t.models.c.id)
        .group_by(*t.models.c)
        .order_by(t.models.c.name)
    )
    return _all(store, query)


@remote_read
def get_model(store: MetadataStore, name: str) -> dict[str, Any]:
    """One model's row, as in :func:`list_models`.

    Raises:
        NotFoundError: no model has this name.
    """
    for row in list_models(store):
        if row["name"] == name:
            return row
    raise _model_not_found(store, name)


@remote_read
def list_versions(store: MetadataStore, name: str) -> list[dict[str, Any]]:
    """The versions of model ``name``, newest first (none if there is no such model)."""
    query = _versions().where(t.models.c.name == name).order_by(t.model_versions.c.version.desc())
    return _all(store, query)


@remote_read
def artifact_links(store: MetadataStore, version_id: str) -> list[dict[str, Any]]:
    """The artifacts linked to a version: ``name``, ``artifact_version_id``,
    ``step_run_id``, ``created_at``; by name."""
    query = (
        select(*t.model_version_artifacts.c)
        .where(t.model_version_artifacts.c.model_version_id == version_id)
        .order_by(t.model_version_artifacts.c.name)
    )
    return _all(store, query)


@remote_read
def check_references(store: MetadataStore, models: list[dict[str, Any] | None]) -> None:
    """Check that every existing version a run's steps name (``Model.to_dict()`` forms)
    exists; a new version (``version`` ``None``) needs nothing.

    Raises:
        NotFoundError: a named model or version does not exist.
    """
    seen: set[tuple[str, str]] = set()
    for model in models:
        if model is None or model.get("version") is None:
            continue
        key = (model["name"], str(model["version"]))
        if key not in seen:
            seen.add(key)
            find_version(store, *key)


@remote_read
def versions_of_run(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """The model versions a run linked outputs to (the one it created, and existing ones
    its steps named), by model name."""
    linked = select(t.model_version_artifacts.c.model_version_id).where(
        t.model_version_artifacts.c.step_run_id.in_(
            select(t.step_runs.c.id).where(t.step_runs.c.run_id == run_id)
        )
    )
    query = (
        _versions()
        .where((t.model_versions.c.run_id == run_id) | t.model_versions.c.id.in_(linked))
        .order_by(t.models.c.name, t.model_versions.c.version)
    )
    return _all(store, query)
