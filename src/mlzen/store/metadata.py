"""The metadata store: sole owner of engines, connections, transactions and writes.

SQLite (the default) runs in WAL mode with ``BEGIN IMMEDIATE`` for writes, so several
processes can share one store file: writers queue on the lock (up to ``busy_timeout``)
instead of failing half-way.  Any other SQLAlchemy URL (PostgreSQL, MySQL) works too.
The schema is migrated with Alembic on first use.

JSON columns hold what JSON can: non-finite floats (``nan``, ``inf``), which SQLite
would store as the non-JSON tokens ``NaN``/``Infinity`` and PostgreSQL refuses, are
written as the tagged values of :mod:`mlzen.store.operations` (``{"__float__": "nan"}``)
and read back as floats, the same on every database.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from mlzen.errors import LeaseLostError, StoreError
from mlzen.names import check_name
from mlzen.store import recognition
from mlzen.store import tables as t
from mlzen.store.operations import decode, encode, remote_write
from mlzen.store.validation import check_output

HEAD_REVISION = "0004"
RUNNING = "running"
CRASHED = "crashed"
#: Why a run (and each step run it was running) was marked ``crashed``.
LEASE_LAPSED = "The run's driver stopped sending heartbeats (process killed or machine lost)."
FINISHED_STATUSES = ("completed", "cached")
#: ``run_metadata.entity_type`` of what a step run logged on its model version (keyed by
#: the step run), so that a cache hit of that step can record it on its own version.
STEP_MODEL_METADATA = "step_model"
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def utcnow() -> datetime:
    """The current UTC time as a naive datetime, as stored in every table."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


def next_version(connection: Connection, version: ColumnElement[int], *where: Any) -> int:
    """One more than the highest ``version`` among the rows ``where`` selects; 1 if none.

    The caller holds a lock on the parent row, so two writers never take the same number.
    """
    return (connection.execute(select(func.max(version)).where(*where)).scalar() or 0) + 1


@dataclass(frozen=True)
class OutputRecord:
    """A saved output to record for a step run."""

    name: str
    uri: str
    content_hash: str
    materializer: str
    data_type: str
    size: int
    metadata: Mapping[str, Any]
    #: ``(name, kind, uri)`` of each visualization published beside the artifact.
    visualizations: Sequence[tuple[str, str, str]] = ()
    #: The id of the artifact store the files are in (``mlzen.artifacts.identity``).
    artifact_store_id: str | None = None
    #: Relative path → size of each of its files; ``None`` if not known.
    files: Mapping[str, int] | None = None


def without_parameters(data: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """``data`` (a run's spec, a step run's cache key parts) without its ``parameters``
    when they are the ones stored in the row's own ``parameters`` column: a parameter
    is stored once per row, and :func:`with_parameters` puts it back on reading."""
    if data.get("parameters") != parameters:
        return dict(data)
    return {k: v for k, v in data.items() if k != "parameters"}


def with_parameters(row: dict[str, Any]) -> dict[str, Any]:
    """A ``pipeline_runs`` or ``step_runs`` row as written, parameters put back."""
    parameters = row.get("parameters")
    if parameters is None:
        return row
    for column in ("spec", "cache_key_parts"):
        data = row.get(column)
        if isinstance(data, dict) and "parameters" not in data:
            row[column] = {**data, "parameters": parameters}
    return row


def dump_json(value: Any) -> str:
    """JSON text for a JSON column; non-finite floats as tagged values (see the module)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:  # nan or inf somewhere
        return json.dumps(encode(value))
    # A dict that looks like a tag must be escaped so that it reads back as itself.
    return json.dumps(encode(value)) if '"__' in text else text


def load_json(text: str | bytes) -> Any:
    """The value :func:`dump_json` wrote (drivers hand over ``str`` or ``bytes``)."""
    value = json.loads(text)
    marker = b'"__' if isinstance(text, bytes) else '"__'
    return decode(value) if marker in text else value  # type: ignore[operator]


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        json_serializer=dump_json,
        json_deserializer=load_json,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN, so writers can ask for IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("mlzen_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                if url.startswith("sqlite"):
                    engine = _sqlite_engine(url)
                else:
                    engine = create_engine(
                        url,
                        pool_pre_ping=True,
                        json_serializer=dump_json,
                        json_deserializer=load_json,
                    )
            except (SQLAlchemyError, ImportError, ValueError) as exc:
                raise StoreError(
                    f"Cannot open the metadata store at '{safe_url(url)}': {exc}. Check "
                    "MLZEN_STORE_URL (an SQLAlchemy URL such as sqlite:///path/mlzen.db or "
                    "postgresql+psycopg://user@host/db) and that its driver is installed.",
                    store_url=safe_url(url),
                ) from exc
            _engines[url] = engine
        return engine


def safe_url(url: str) -> str:
    """``url`` with any password hidden, for messages and display."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def dispose_engines() -> None:
    """Close every pooled connection (used by tests and before forking)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


class MetadataStore:
    """Every write to the metadata store goes through this class."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = get_engine(url)
        self._writer = self.engine.execution_options(mlzen_write=True)
        self._named_ids: dict[tuple[str, str], str] = {}
        self.ensure_schema()

    # -- sessions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside a write transaction, committed on success."""
        try:
            with self._writer.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise StoreError(
                f"Writing to the metadata store at '{safe_url(self.url)}' failed: {exc.orig}. "
                "If another process holds the database, retry; otherwise check the URL.",
                store_url=safe_url(self.url),
            ) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (a plain transaction, never holding the write lock)."""
        with self.engine.connect() as connection:
            yield connection

    def ensure_schema(self) -> None:
        """Create or migrate the schema to the current revision, once per process."""
        if self.url in _migrated:
            return
        current = None
        database = recognition.sqlite_file(self.url)
        # An SQLite file is only ever created (by connecting) inside the migration lock,
        # after the checks there: never read a missing or empty one outside it. One that
        # exists is recognised before mlzen's first connection, which writes to it.
        if database is None or recognition.has_content(database):
            if database is not None:
                recognition.refuse_foreign_file(self.url, safe_url(self.url))
            try:
                with self.read() as connection:
                    current = connection.exec_driver_sql(
                        "SELECT version_num FROM alembic_version"
                    ).scalar()
            except (OperationalError, SQLAlchemyError):
                current = None
        if current != HEAD_REVISION:
            self._migrate()
        _migrated.add(self.url)

    def _migrate(self) -> None:
        """Recognise the database as an mlzen store (or an empty one), then migrate it."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(recognition.MIGRATIONS))
        shown = safe_url(self.url)
        try:
            # Connecting is inside: an unreachable server or a refused login fails here.
            with self._migration_lock():
                recognition.refuse_foreign_file(self.url, shown)
                with self.engine.connect() as connection:
                    recognition.refuse_foreign(connection, shown)
                    connection.rollback()  # end the inspection's transaction
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    connection.commit()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"Migrating the metadata store at '{shown}' failed: {exc}. "
                "Check that the database is reachable and writable.",
                store_url=shown,
            ) from exc

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Serialise first-time migrations of one store between processes."""
        if self.url.startswith("sqlite"):
            import fcntl

            database = make_url(self.url).database
            if not database or database == ":memory:":
                yield
                return
            with open(f"{database}.migrate.lock", "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        elif self.engine.dialect.name == "postgresql":
            with self.engine.connect() as lock_connection:
                lock_connection.exec_driver_sql("SELECT pg_advisory_lock(7261991)")
                try:
                    yield
                finally:
                    lock_connection.exec_driver_sql("SELECT pg_advisory_unlock(7261991)")
                    lock_connection.commit()
        else:
            yield

    # -- runs -------------------------------------------------------------------------

    @remote_write()
    def create_run(
        self,
        *,
        pipeline_name: str,
        run_name: str,
        spec: dict[str, Any],
        parameters: dict[str, Any],
        stack: str,
        code_version: dict[str, Any],
        environment: dict[str, Any],
        lease_seconds: float,
        resumed_from_id: str | None = None,
    ) -> str:
        """Record a new run in status ``running``; returns its id."""
        check_name("pipeline", pipeline_name)
        check_name("run", run_name)
        run_id = new_id()
        now = utcnow()
        pipeline_id = self._get_or_create(t.pipelines, pipeline_name)
        with self.write() as connection:
            connection.execute(
                insert(t.pipeline_runs).values(
                    id=run_id,
                    name=run_name,
                    pipeline_id=pipeline_id,
                    status=RUNNING,
                    spec=without_parameters(spec, parameters),
                    parameters=parameters,
                    stack=stack,
                    code_version=code_version,
                    environment=environment,
                    created_at=now,
                    heartbeat_at=now,
                    lease_seconds=lease_seconds,
                    resumed_from_id=resumed_from_id,
                )
            )
        return run_id

    @remote_write(idempotent=True)
    def heartbeat(self, run_id: str) -> bool:
        """Renew a run's lease; only the run's driver calls this.

        A reader marks a run ``crashed`` once its lease runs out. A driver that was only
        silent (a step holding the GIL, a suspended machine, a store it could not
        reach) is still the run's one driver: its next heartbeat takes the run back,
        making it and the step runs marked ``crashed`` with it ``running`` again. A run
        that ended otherwise (completed, failed, stopped) stays as it is.

        Returns:
            True if the run had been marked crashed and is running again.
        """
        now = utcnow()
        runs = t.pipeline_runs
        with self.write() as connection:
            status = connection.execute(
                select(runs.c.status).where(runs.c.id == run_id).with_for_update()
            ).scalar()
            if status not in (RUNNING, CRASHED):
                return False
            connection.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=RUNNING, heartbeat_at=now, ended_at=None, error=None)
            )
            if status == RUNNING:
                return False
            connection.execute(
                update(t.step_runs)
                .where(t.step_runs.c.run_id == run_id, t.step_runs.c.status == CRASHED)
                .values(status=RUNNING, ended_at=None, error=None)
            )
            return True

    def _check_step_lease(self, connection: Connection, step_run_id: str) -> None:
        """:meth:`_check_lease` for the run of a step run that must still be running."""
        steps = t.step_runs
        row = connection.execute(
            select(steps.c.run_id, steps.c.step_id, steps.c.status).where(steps.c.id == step_run_id)
        ).one_or_none()
        if row is None:
            raise LeaseLostError(
                f"Step run '{step_run_id}' cannot be recorded: it does not exist (its run "
                "was deleted). Nothing to do: stop the process that runs it.",
                run_id="",
                status="deleted",
                reclaimable=False,
                lease_seconds=0.0,
            )
        self._check_lease(connection, row.run_id, row.step_id)
        if row.status != RUNNING:
            raise LeaseLostError(
                f"Step '{row.step_id}' of run '{row.run_id}' cannot be recorded twice: it "
                f"is already {row.status}.",
                run_id=row.run_id,
                status=RUNNING,
                reclaimable=False,
                lease_seconds=0.0,
                step_name=row.step_id,
            )

    def _check_lease(self, connection: Connection, run_id: str, step_id: str) -> None:
        """Refuse a step-run write unless the run is ``running`` under a live lease.

        The run's row is locked until the write commits, so a reader cannot mark the
        run crashed between this check and the write.
        """
        runs = t.pipeline_runs
        row = connection.execute(
            select(runs.c.name, runs.c.status, runs.c.heartbeat_at, runs.c.lease_seconds)
            .where(runs.c.id == run_id)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise LeaseLostError(
                f"Step '{step_id}' cannot be recorded: run '{run_id}' does not exist (it was "
                "deleted). Nothing to do: stop the process that runs it.",
                run_id=run_id,
                status="deleted",
                reclaimable=False,
                lease_seconds=0.0,
                step_name=step_id,
            )
        lapsed = row.heartbeat_at + timedelta(seconds=row.lease_seconds) < utcnow()
        if row.status == RUNNING and not lapsed:
            return
        fields = {
            "run_id": run_id,
            "run_name": row.name,
            "status": row.status,
            "lease_seconds": row.lease_seconds,
            "step_name": step_id,
        }
        if row.status in (RUNNING, CRASHED):
            raise LeaseLostError(
                f"Step '{step_id}' of run '{row.name}' cannot be recorded: the run's driver "
                f"has not renewed its lease for more than {row.lease_seconds:g}s, so the run "
                f"is {'crashed' if row.status == CRASHED else 'presumed crashed'}. A live "
                "driver takes it back at its next heartbeat; a process that outlived its "
                f"driver must stop. Resume the run with 'mlzen runs resume {row.name}'.",
                reclaimable=True,
                **fields,
            )
        raise LeaseLostError(
            f"Step '{step_id}' of run '{row.name}' cannot be recorded: the run is "
            f"{row.status}, and only a running run's driver records steps. Resume it with "
            f"'mlzen runs resume {row.name}' to run what did not finish.",
            reclaimable=False,
            **fields,
        )

    @remote_write(idempotent=True)
    def finish_run(
        self,
        run_id: str,
        status: str,
        error: str | None = None,
        step_errors: Mapping[str, str] | None = None,
    ) -> None:
        """End a run; its step runs still ``running`` end with the same status.

        Only the run's driver calls this, also when a reader marked the run crashed
        meanwhile: the driver is alive, and its step runs marked ``crashed`` with the run
        are treated as still running.

        Args:
            run_id: the run.
            status: its final status.
            error: why it did not complete, if it did not.
            step_errors: errors of invocations that died without recording their end
                (e.g. a killed worker process), by invocation id.
        """
        now = utcnow()
        unfinished = (t.step_runs.c.run_id == run_id, t.step_runs.c.status.in_((RUNNING, CRASHED)))
        with self.write() as connection:
            connection.execute(
                update(t.pipeline_runs)
                .where(t.pipeline_runs.c.id == run_id)
                .values(status=status, ended_at=now, error=error)
            )
            for step_id, step_error in (step_errors or {}).items():
                connection.execute(
                    update(t.step_runs)
                    .where(*unfinished, t.step_runs.c.step_id == step_id)
                    .values(status=status, ended_at=now, error=step_error)
                )
            connection.execute(
                update(t.step_runs).where(*unfinished).values(status=status, ended_at=now)
            )

    # Viewers may: reading runs does it (Client marks runs whose lease ran out).
    @remote_write(idempotent=True, role="viewer")
    def expire_stale_runs(self, run_ids: list[str] | None = None) -> list[str]:
        """Mark runs whose lease ran out as ``crashed``, with their unfinished steps.

        Args:
            run_ids: only look at these runs; all running runs when ``None``.
        """
        runs = t.pipeline_runs
        query = select(runs.c.id, runs.c.heartbeat_at, runs.c.lease_seconds).where(
            runs.c.status == RUNNING
        )
        if run_ids is not None:
            query = query.where(runs.c.id.in_(run_ids))
        now = utcnow()
        with self.read() as connection:
            stale = {
                row.id: row.heartbeat_at
                for row in connection.execute(query)
                if row.heartbeat_at + timedelta(seconds=row.lease_seconds) < now
            }
        if not stale:
            return []
        crashed = []
        with self.write() as connection:
            for run_id, heartbeat_at in stale.items():
                # Unless the driver renewed its lease since it was read.
                marked = connection.execute(
                    update(runs)
                    .where(
                        runs.c.id == run_id,
                        runs.c.status == RUNNING,
                        runs.c.heartbeat_at == heartbeat_at,
                    )
                    .values(status=CRASHED, ended_at=now, error=LEASE_LAPSED)
                )
                if marked.rowcount:
                    crashed.append(run_id)
            if crashed:
                connection.execute(
                    update(t.step_runs)
                    .where(t.step_runs.c.run_id.in_(crashed), t.step_runs.c.status == RUNNING)
                    .values(status=CRASHED, ended_at=now, error=LEASE_LAPSED)
                )
        return crashed

    # -- step runs --------------------------------------------------------------------

    @remote_write()
    def start_step_run(
        self,
        *,
        run_id: str,
        step_id: str,
        step_name: str,
        parameters: dict[str, Any],
        config: dict[str, Any],
        source: str,
        code_hash: str,
        cache_key: str,
        cache_key_parts: dict[str, Any],
        inputs: Mapping[str, str],
        status: str = RUNNING,
        cached_from_id: str | None = None,
        outputs: Mapping[str, str] | None = None,
        model_version_id: str | None = None,
    ) -> str:
        """Record a step run with its input edges (and output edges, for a cache hit).

        Raises:
            LeaseLostError: the run is not running, or its driver's lease ran out.

        With ``model_version_id``, a cache hit's outputs are linked to that model version
        in the same transaction, and the metadata the step run it reuses logged on its
        model version (``log_metadata(..., model=True)``) is recorded on this one: the
        outputs are the same, so is what the step said about them.
        """
        check_name("step", step_id)
        check_name("step", step_name)
        step_run_id = new_id()
        now = utcnow()
        edges = [
            {"step_run_id": step_run_id, "direction": "input", "name": n, "artifact_version_id": a}
            for n, a in inputs.items()
        ] + [
            {"step_run_id": step_run_id, "direction": "output", "name": n, "artifact_version_id": a}
            for n, a in (outputs or {}).items()
        ]
        for attempt in range(10):
            try:
                with self.write() as connection:
                    self._check_lease(connection, run_id, step_id)
                    connection.execute(
                        insert(t.step_runs).values(
                            id=step_run_id,
                            run_id=run_id,
                            step_id=step_id,
                            step_name=step_name,
                            status=status,
                            parameters=parameters,
                            config=config,
                            source=source,
                            code_hash=code_hash,
                            cache_key=cache_key,
                            cache_key_parts=without_parameters(cache_key_parts, parameters),
                            cached_from_id=cached_from_id,
                            started_at=now,
                            ended_at=None if status == RUNNING else now,
                            attempts=0,
                        )
                    )
                    if edges:
                        connection.execute(insert(t.step_run_artifacts), edges)
                    if model_version_id is not None and outputs:
                        self._link_to_model(connection, model_version_id, outputs, step_run_id, now)
                    if model_version_id is not None and cached_from_id is not None:
                        self._carry_model_metadata(
                            connection, cached_from_id, step_run_id, model_version_id, now
                        )
                break
            except IntegrityError:
                # Only a model link can collide: another step of the same model version
                # linked an output of the same name at the same moment. Retry.
                if model_version_id is None or attempt == 9:
                    raise
        return step_run_id

    @remote_write()
    def finish_step_run(
        self,
        step_run_id: str,
        *,
        status: str,
        outputs: list[OutputRecord] = (),  # type: ignore[assignment]
        attempts: int = 1,
        error: str | None = None,
        logs: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        output_metadata: Mapping[str, Mapping[str, Any]] | None = None,
        model_version_id: str | None = None,
        model_metadata: Mapping[str, Any] | None = None,
        hook_error: str | None = None,
    ) -> dict[str, str]:
        """Record a step run's outcome and outputs in one transaction.

        A step run whose run is no longer ``running`` (stopped, or crashed because its
        driver's lease ran out) keeps its status: the write is refused. ``hook_error`` is
        what its failure hook raised (see :meth:`record_hook_error`).

        With ``model_version_id``, the outputs are linked to that model version (by
        output name, replacing an earlier link of the same name) and ``model_metadata``
        is recorded on it, in the same transaction.

        Returns:
            The new artifact version id of each output, by output name.

        Raises:
            LeaseLostError: the run is not running, or its driver's lease ran out.
        """
        for output in outputs:
            check_output(output)
        now = utcnow()
        created: dict[str, str] = {}
        artifact_ids = {o.name: self._get_or_create(t.artifacts, o.name) for o in outputs}
        for attempt in range(10):
            try:
                with self.write() as connection:
                    self._check_step_lease(connection, step_run_id)
                    for output in outputs:
                        created[output.name] = self._insert_version(
                            connection, artifact_ids[output.name], output, step_run_id, now
                        )
                    if created:
                        connection.execute(
                            insert(t.step_run_artifacts),
                            [
                                {
                                    "step_run_id": step_run_id,
                                    "direction": "output",
                                    "name": name,
                                    "artifact_version_id": version_id,
                                }
                                for name, version_id in created.items()
                            ],
                        )
                    visualizations = [
                        {
                            "id": new_id(),
                            "artifact_version_id": created[o.name],
                            "name": name,
                            "kind": kind,
                            "uri": uri,
                            "created_at": now,
                        }
                        for o in outputs
                        for name, kind, uri in o.visualizations
                    ]
                    if visualizations:
                        connection.execute(insert(t.artifact_visualizations), visualizations)
                    rows = [("step_run", step_run_id, k, v) for k, v in (metadata or {}).items()]
                    for name, values in (output_metadata or {}).items():
                        if name in created:
                            rows += [
                                ("artifact_version", created[name], k, v) for k, v in values.items()
                            ]
                    if model_version_id is not None:
                        self._link_to_model(connection, model_version_id, created, step_run_id, now)
                        for k, v in (model_metadata or {}).items():
                            rows += [
                                ("model_version", model_version_id, k, v),
                                (STEP_MODEL_METADATA, step_run_id, k, v),
                            ]
                    self._insert_metadata(connection, rows, now)
                    connection.execute(
                        update(t.step_runs)
                        .where(t.step_runs.c.id == step_run_id)
                        .values(
                            status=status,
                            ended_at=now,
                            attempts=attempts,
                            error=error,
                            logs=logs,
                            hook_error=hook_error,
                        )
                    )
                return created
            except IntegrityError:
                # Defence in depth: the row lock in _insert_version should prevent this.
                created.clear()
                if attempt == 9:
                    raise
        return created

    @remote_write(idempotent=True)
    def record_hook_error(self, step_run_id: str, hook_error: str) -> None:
        """Record what a step run's success or failure hook raised; its status stays."""
        with self.write() as connection:
            connection.execute(
                update(t.step_runs)
                .where(t.step_runs.c.id == step_run_id)
                .values(hook_error=hook_error)
            )

    def _insert_version(
        self,
        connection: Connection,
        artifact_id: str,
        output: OutputRecord,
        step_run_id: str,
        now: datetime,
    ) -> str:
        # Lock the artifact row so concurrent writers number versions one after another
        # (PostgreSQL, MySQL); SQLite's BEGIN IMMEDIATE already serialises writers.
        connection.execute(
            select(t.artifacts.c.id).where(t.artifacts.c.id == artifact_id).with_for_update()
        )
        version = next_version(
            connection,
            t.artifact_versions.c.version,
            t.artifact_versions.c.artifact_id == artifact_id,
        )
        version_id = new_id()
        connection.execute(
            insert(t.artifact_versions).values(
                id=version_id,
                artifact_id=artifact_id,
                version=version,
                uri=output.uri,
                content_hash=output.content_hash,
                materializer=output.materializer,
                data_type=output.data_type,
                size=output.size,
                metadata=dict(output.metadata),
                files=dict(output.files) if output.files is not None else None,
                producer_step_run_id=step_run_id,
                created_at=now,
                artifact_store_id=output.artifact_store_id,
            )
        )
        return version_id

    @staticmethod
    def _carry_model_metadata(
        connection: Connection,
        cached_from_id: str,
        step_run_id: str,
        model_version_id: str,
        now: datetime,
    ) -> None:
        """Record on ``model_version_id`` (and as logged by the cache hit ``step_run_id``,
        so that a hit on this hit carries it on too) the model metadata that the step run
        ``cached_from_id`` logged."""
        m = t.run_metadata.c
        logged = connection.execute(
            select(m.key, m.value)
            .where(m.entity_type == STEP_MODEL_METADATA, m.entity_id == cached_from_id)
            .order_by(m.id)
        ).all()
        if logged:
            connection.execute(
                insert(t.run_metadata),
                [
                    {"entity_type": e, "entity_id": i, "key": k, "value": v, "created_at": now}
                    for k, v in logged
                    for e, i in (
                        ("model_version", model_version_id),
                        (STEP_MODEL_METADATA, step_run_id),
                    )
                ],
            )

    @staticmethod
    def _link_to_model(
        connection: Connection,
        model_version_id: str,
        outputs: Mapping[str, str],
        step_run_id: str,
        now: datetime,
    ) -> None:
        """Link artifact versions to a model version by name; a name linked before now
        points at the new artifact version (the latest output of that name wins)."""
        if not outputs:
            return
        links = t.model_version_artifacts
        connection.execute(
            delete(links).where(
                links.c.model_version_id == model_version_id, links.c.name.in_(list(outputs))
            )
        )
        connection.execute(
            insert(links),
            [
                {
                    "model_version_id": model_version_id,
                    "name": name,
                    "artifact_version_id": version_id,
                    "step_run_id": step_run_id,
                    "created_at": now,
                }
                for name, version_id in outputs.items()
            ],
        )

    def _get_or_create(self, table: Any, name: str) -> str:
        """The id of the ``pipelines`` or ``artifacts`` row named ``name``, made if new.

        Two processes may create the same name at once: the loser of the unique index
        reads the winner's row.
        """
        cache_key = (table.name, name)
        cached = self._named_ids.get(cache_key)
        if cached is not None:
            return cached
        for _ in range(3):
            with self.read() as connection:
                row_id = connection.execute(select(table.c.id).where(table.c.name == name)).scalar()
            if row_id is None:
                row_id = new_id()
                try:
                    with self.write() as connection:
                        connection.execute(
                            insert(table).values(id=row_id, name=name, created_at=utcnow())
                        )
                except IntegrityError:
                    continue
            self._named_ids[cache_key] = row_id
            return str(row_id)
        raise StoreError(
            f"Could not create or find '{name}' in table '{table.name}' of the metadata store "
            f"at '{safe_url(self.url)}'. Retry; if it persists, check the database.",
            store_url=safe_url(self.url),
        )

    @remote_write(idempotent=True)
    def delete_run(self, run_id: str) -> int:
        """Delete a run, its step runs, lineage and metadata, and the artifact versions it
        produced that no other step run uses and no model version links. Returns how
        many versions were deleted.

        Model versions the run created stay (with no run), and so do the artifact
        versions they link, and so their files. The artifact files of deleted versions
        stay until ``mlzen gc`` finds them unreferenced.
        """
        with self.write() as connection:
            step_run_ids = select(t.step_runs.c.id).where(t.step_runs.c.run_id == run_id)
            produced = set(
                connection.execute(
                    select(t.artifact_versions.c.id).where(
                        t.artifact_versions.c.producer_step_run_id.in_(step_run_ids)
                    )
                ).scalars()
            )
            used_elsewhere = (
                set(
                    connection.execute(
                        select(t.step_run_artifacts.c.artifact_version_id).where(
                            t.step_run_artifacts.c.artifact_version_id.in_(produced),
                            t.step_run_artifacts.c.step_run_id.not_in(step_run_ids),
                        )
                    ).scalars()
                )
                if produced
                else set()
            )
            linked = (
                set(
                    connection.execute(
                        select(t.model_version_artifacts.c.artifact_version_id).where(
                            t.model_version_artifacts.c.artifact_version_id.in_(produced)
                        )
                    ).scalars()
                )
                if produced
                else set()
            )
            orphaned = produced - used_elsewhere - linked
            connection.execute(
                delete(t.run_metadata).where(
                    or_(
                        (t.run_metadata.c.entity_type == "pipeline_run")
                        & (t.run_metadata.c.entity_id == run_id),
                        t.run_metadata.c.entity_type.in_(("step_run", STEP_MODEL_METADATA))
                        & t.run_metadata.c.entity_id.in_(step_run_ids),
                        (t.run_metadata.c.entity_type == "artifact_version")
                        & t.run_metadata.c.entity_id.in_(orphaned),
                    )
                )
            )
            connection.execute(
                delete(t.step_run_artifacts).where(
                    t.step_run_artifacts.c.step_run_id.in_(step_run_ids)
                )
            )
            connection.execute(
                update(t.artifact_versions)
                .where(t.artifact_versions.c.producer_step_run_id.in_(step_run_ids))
                .values(producer_step_run_id=None)
            )
            if orphaned:
                connection.execute(
                    delete(t.artifact_versions).where(t.artifact_versions.c.id.in_(orphaned))
                )
            # The foreign keys say SET NULL too; said here for databases that ignore them.
            connection.execute(
                update(t.model_version_artifacts)
                .where(t.model_version_artifacts.c.step_run_id.in_(step_run_ids))
                .values(step_run_id=None)
            )
            connection.execute(
                update(t.model_versions)
                .where(t.model_versions.c.run_id == run_id)
                .values(run_id=None)
            )
            connection.execute(delete(t.step_runs).where(t.step_runs.c.run_id == run_id))
            connection.execute(delete(t.pipeline_runs).where(t.pipeline_runs.c.id == run_id))
        return len(orphaned)

    # -- metadata ---------------------------------------------------------------------

    @remote_write()
    def add_metadata(self, entity_type: str, entity_id: str, values: Mapping[str, Any]) -> None:
        """Attach key/value metadata to a run, step run, artifact or model version."""
        with self.write() as connection:
            self._insert_metadata(
                connection, [(entity_type, entity_id, k, v) for k, v in values.items()], utcnow()
            )

    @staticmethod
    def _insert_metadata(
        connection: Connection, rows: list[tuple[str, str, str, Any]], now: datetime
    ) -> None:
        if rows:
            connection.execute(
                insert(t.run_metadata),
                [
                    {
                        "entity_type": e,
                        "entity_id": i,
                        "key": k,
                        "value": json.dumps(v, allow_nan=True),
                        "created_at": now,
                    }
                    for e, i, k, v in rows
                ],
            )
