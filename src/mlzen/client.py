"""``Client``: runs, step runs, artifacts and lineage, for notebooks and scripts.

Method names follow what ZenML users know (``list_pipeline_runs``,
``get_artifact_version``, ...).  Results are small handle objects that load related
records lazily, so ``run.steps["train"].outputs["model"].load()`` reads only what it
needs.
"""

from __future__ import annotations

import sys
import time
import traceback
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlzen.errors import ConfigError, NotFoundError, RunFailedError, StoreError
from mlzen.stack import Stack, active_stack

if TYPE_CHECKING:
    from pathlib import Path

    from mlzen.artifacts.visualization import ArtifactVisualization
    from mlzen.comparison import RunDiff
    from mlzen.model_versions import ModelVersion, RegisteredModel
    from mlzen.spec import PipelineSpec
    from mlzen.steps import Step

RUN_SUCCESS = ("completed",)


class _Progress:
    """One line per finished step on stderr, and a summary line for the run."""

    def __init__(self, run_name: str, total: int) -> None:
        self.run_name = run_name
        self.total = total
        self.started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.hooks_failed = 0
        print(f"mlzen: running {run_name} ({total} steps)", file=sys.stderr)

    def __call__(self, outcome: Any) -> None:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        done = sum(self.counts.values())
        hook_error = getattr(outcome, "hook_error", None)
        hook = f" ({hook_error.split(' ', 1)[0]} hook failed)" if hook_error else ""
        self.hooks_failed += bool(hook)
        print(
            f"mlzen: [{done}/{self.total}] {outcome.step_id}: {outcome.status}{hook}",
            file=sys.stderr,
        )

    def finish(self, status: str) -> None:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        if self.hooks_failed:
            counts += f"; {self.hooks_failed} hook{'s' if self.hooks_failed > 1 else ''} failed"
        elapsed = time.monotonic() - self.started
        print(
            f"mlzen: {self.run_name} {status} in {elapsed:.2f}s ({counts or 'no steps ran'})",
            file=sys.stderr,
        )


class ArtifactVersion:
    """One stored version of a named artifact."""

    def __init__(self, client: Client, row: dict[str, Any]) -> None:
        self._client = client
        self.id: str = row["id"]
        self.name: str = row["name"]
        self.version: int = row["version"]
        self.uri: str = row["uri"]
        self.content_hash: str = row["content_hash"]
        self.materializer: str = row["materializer"]
        self.data_type: str = row["data_type"]
        self.size: int = row["size"]
        self.created_at: datetime = row["created_at"]
        self.producer_step_run_id: str | None = row["producer_step_run_id"]
        #: The artifact store holding the files; ``None`` for versions saved before
        #: stores had ids (read only when ``uri`` lies in the stack's artifact store).
        self.artifact_store_id: str | None = row.get("artifact_store_id")
        #: Relative path → size of its files as saved; ``None`` if not recorded.
        self.files: dict[str, int] | None = row.get("files")
        self._extracted: dict[str, Any] = row["metadata"]

    @property
    def metadata(self) -> dict[str, Any]:
        """Auto-extracted metadata with anything logged for this version laid on top."""
        logged = self._client._metadata("artifact_version", self.id)
        return {**self._extracted, **logged}

    def load(self) -> Any:
        """Read the value back (hash-verified) with the materializer that saved it.

        Raises:
            ForeignArtifactError: The version is recorded in another artifact store
                than the stack's (``mlzen.artifacts.identity``).
        """
        from mlzen.artifacts.materializer import load_artifact

        return load_artifact(
            self._client.stack.artifact_store,
            uri=self.folder_uri(),
            content_hash=self.content_hash,
            materializer=self.materializer,
            data_type=self.data_type,
            name=self.name,
        )

    def local_path(self) -> Path:
        """A local folder holding this version's files (downloaded first from a remote
        store), hash-verified. Read it, never write to it."""
        return self._client.stack.artifact_store.local_path(self.folder_uri(), self.content_hash)

    def folder_uri(self) -> str:
        """The URI of this version's folder in the stack's artifact store, derived from
        its content hash; the recorded ``uri`` is never opened.

        Raises:
            ForeignArtifactError: The version is recorded in another artifact store.
        """
        from mlzen.artifacts.identity import version_folder

        return version_folder(
            self._client.stack.artifact_store,
            artifact_store_id=self.artifact_store_id,
            uri=self.uri,
            content_hash=self.content_hash,
            name=self.name,
            version=self.version,
        )

    @property
    def visualizations(self) -> list[ArtifactVisualization]:
        """Files that show this version (HTML preview, PNG plots, ...), by name.

        Each has ``name``, ``kind``, ``uri``, ``path`` and ``read_bytes()``, and displays
        itself in a notebook.
        """
        from mlzen.artifacts.visualization import ArtifactVisualization
        from mlzen.store import queries

        store = self._client.stack.artifact_store
        return [
            ArtifactVisualization(
                store,
                name=row["name"],
                kind=row["kind"],
                uri=row["uri"],
                artifact_store_id=self.artifact_store_id,
                artifact=f"{self.name}:{self.version}",
            )
            for row in queries.visualizations_of(self._client.store, self.id)
        ]

    @property
    def producer(self) -> StepRun | None:
        """The step run that created this version (lineage upstream)."""
        if self.producer_step_run_id is None:
            return None
        return self._client.get_run_step(self.producer_step_run_id)

    @property
    def consumers(self) -> list[StepRun]:
        """Step runs that read this version as an input (lineage downstream)."""
        from mlzen.store import queries

        rows = queries.consumers_of(self._client.store, self.id)
        return [StepRun(self._client, row) for row in rows]

    def __repr__(self) -> str:
        return f"<ArtifactVersion {self.name}:{self.version} {self.data_type} {self.size}B>"


class StepRun:
    """One execution (or cache hit) of a step invocation."""

    def __init__(self, client: Client, row: dict[str, Any]) -> None:
        self._client = client
        self._row = row
        self.id: str = row["id"]
        self.run_id: str = row["run_id"]
        self.name: str = row["step_id"]
        self.step_name: str = row["step_name"]
        self.status: str = row["status"]
        self.parameters: dict[str, Any] = row["parameters"]
        self.config: dict[str, Any] = row["config"]
        self.source: str = row["source"]
        self.code_hash: str = row["code_hash"]
        self.cache_key: str = row["cache_key"]
        self.cache_key_parts: dict[str, Any] = row["cache_key_parts"]
        self.cached_from_id: str | None = row["cached_from_id"]
        self.started_at: datetime = row["started_at"]
        self.ended_at: datetime | None = row["ended_at"]
        self.attempts: int = row["attempts"]
        self.error: str | None = row["error"]
        #: What the step's ``on_success`` or ``on_failure`` hook raised (its status stays).
        self.hook_error: str | None = row.get("hook_error")
        self.logs: str = row["logs"] or ""

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` while running."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    @cached_property
    def _edges(self) -> dict[str, dict[str, str]]:
        from mlzen.store import queries

        return queries.edges_of(self._client.store, [self.id])[self.id]

    def _versions(self, direction: str) -> dict[str, ArtifactVersion]:
        from mlzen.store import queries

        ids = self._edges[direction]
        rows = queries.get_artifact_versions(self._client.store, ids.values())
        return {name: ArtifactVersion(self._client, rows[v]) for name, v in ids.items()}

    @property
    def inputs(self) -> dict[str, ArtifactVersion]:
        """Input artifact versions by argument name."""
        return self._versions("input")

    @property
    def outputs(self) -> dict[str, ArtifactVersion]:
        """Output artifact versions by output name."""
        return self._versions("output")

    @property
    def metadata(self) -> dict[str, Any]:
        return self._client._metadata("step_run", self.id)

    def __repr__(self) -> str:
        return f"<StepRun {self.name} {self.status}>"


class PipelineRun:
    """One run of a pipeline."""

    def __init__(self, client: Client, row: dict[str, Any]) -> None:
        self._client = client
        self.id: str = row["id"]
        self.name: str = row["name"]
        self.pipeline_name: str = row["pipeline_name"]
        self.status: str = row["status"]
        self.parameters: dict[str, Any] = row["parameters"]
        self.spec_data: dict[str, Any] = row["spec"]
        self.stack: str = row["stack"]
        self.code_version: dict[str, Any] = row["code_version"]
        self.environment: dict[str, Any] = row["environment"]
        self.created_at: datetime = row["created_at"]
        self.ended_at: datetime | None = row["ended_at"]
        self.heartbeat_at: datetime = row["heartbeat_at"]
        self.error: str | None = row["error"]
        self.resumed_from_id: str | None = row["resumed_from_id"]

    @property
    def duration(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.created_at).total_seconds()

    @cached_property
    def steps(self) -> dict[str, StepRun]:
        """Step runs by invocation id (``train``, ``train_2``, ...)."""
        from mlzen.store import queries

        rows = queries.step_runs_of(self._client.store, self.id)
        return {row["step_id"]: StepRun(self._client, row) for row in rows}

    @property
    def spec(self) -> PipelineSpec:
        from mlzen.spec import PipelineSpec

        return PipelineSpec.from_dict(self.spec_data)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._client._metadata("pipeline_run", self.id)

    @property
    def model_versions(self) -> list[ModelVersion]:
        """The model versions this run linked outputs to: the one it made for each
        ``Model(name)``, and existing versions its steps named; by model name."""
        from mlzen.model_versions import ModelVersion
        from mlzen.store import models

        rows = models.versions_of_run(self._client.store, self.id)
        return [ModelVersion(self._client, row) for row in rows]

    def refresh(self) -> PipelineRun:
        """A fresh copy of this run from the store."""
        return self._client.get_pipeline_run(self.id)

    def resume(self) -> PipelineRun:
        """Run again what did not succeed, reusing every step that did.

        The steps are imported by the ``module:qualname`` recorded in the run's spec.
        """
        from mlzen.steps import import_step

        spec = self.spec
        steps = {step_id: import_step(s.source) for step_id, s in spec.steps.items()}
        return self._client.run_pipeline(spec, steps, resume_from=self)

    def __repr__(self) -> str:
        return f"<PipelineRun {self.name} {self.status}>"


class Client:
    """Read (and annotate) everything mlzen recorded: pipelines, runs, steps, artifacts."""

    def __init__(self, stack: Stack | None = None) -> None:
        self.stack = stack or active_stack()

    @property
    def store(self) -> Any:
        return self.stack.metadata_store

    # -- running ------------------------------------------------------------------------

    def run_pipeline(
        self,
        spec: PipelineSpec,
        steps: dict[str, Step],
        *,
        run_name: str | None = None,
        resume_from: PipelineRun | str | None = None,
    ) -> PipelineRun:
        """Run a built pipeline on this client's stack and return the finished run.

        SIGTERM stops the run as Ctrl-C does (see ``StopOnSigterm``), then ends the
        process as SIGTERM would.
        """
        from mlzen.orchestrators.base import (
            Heartbeat,
            RunHandle,
            RunTerminated,
            StopOnSigterm,
            schedule,
        )
        from mlzen.runtime.environment import code_version, python_environment
        from mlzen.runtime.fingerprint import source_of
        from mlzen.runtime.worker import refuse_run_in_worker
        from mlzen.store.metadata import new_id, utcnow

        refuse_run_in_worker(spec.name)
        self.stack.validate()
        # Outputs record the artifact store they are saved in; give it its id first.
        self.stack.claim_artifact_store()
        from mlzen.parameters import check_sizes
        from mlzen.store.models import check_references

        # Parameters are stored with the run and each step run: big data is an artifact.
        check_sizes(
            [(f"Pipeline '{spec.name}'", spec.parameters)]
            + [(f"Step '{step_id}'", s.parameters) for step_id, s in spec.steps.items()],
            self.stack.settings.max_parameter_bytes,
        )

        # Fail before the run starts if it names a model version that does not exist.
        check_references(self.store, [s.model for s in spec.steps.values()])

        reuse: dict[str, dict[str, Any]] = {}
        resumed_from_id = None
        if resume_from is not None:
            previous = (
                resume_from
                if isinstance(resume_from, PipelineRun)
                else self.get_pipeline_run(str(resume_from))
            )
            resumed_from_id = previous.id
            reuse = {
                step_id: {"id": s.id, "cache_key": s.cache_key}
                for step_id, s in previous.steps.items()
                if s.status in ("completed", "cached")
            }
        settings = self.stack.settings
        now = utcnow()
        name = (run_name or "{pipeline}-{date}-{time}-{uid}").format(
            pipeline=spec.name,
            date=now.strftime("%Y_%m_%d"),
            time=now.strftime("%H_%M_%S_%f"),
            uid=new_id()[:6],
        )
        from sqlalchemy.exc import IntegrityError

        try:
            run_id = self.store.create_run(
                pipeline_name=spec.name,
                run_name=name,
                spec=spec.to_dict(),
                parameters=spec.parameters,
                stack=self.stack.name,
                code_version=code_version(
                    settings.project_root, [source_of(s.func) for s in steps.values()]
                ),
                environment=python_environment(),
                lease_seconds=settings.lease_seconds,
                resumed_from_id=resumed_from_id,
            )
        except IntegrityError:
            raise ConfigError(
                f"A run named '{name}' already exists. Give run_name a unique value, e.g. "
                "with the {date} and {time} placeholders.",
                run_name=name,
            ) from None
        tracker = self.stack.experiment_tracker
        handle = RunHandle(run_id, name, spec.name, reuse, tracker=tracker)
        status, error, failed = "failed", None, []
        progress = _Progress(name, len(spec.steps)) if settings.progress else None
        with StopOnSigterm() as sigterm:
            try:
                with sigterm.armed():
                    if tracker is not None:
                        handle.tracker_run = tracker.start_run(
                            pipeline_name=spec.name,
                            run_id=run_id,
                            run_name=name,
                            parameters=spec.parameters,
                        )
                    with Heartbeat(self.store, run_id, settings.heartbeat_interval, name):
                        outcomes = schedule(spec, steps, handle, self.stack.executor(), progress)
                failed = [o for o in outcomes.values() if not o.succeeded]
                status = "failed" if failed else "completed"
                error = failed[0].error if failed else None
            except KeyboardInterrupt as exc:
                status, error = "stopped", "Stopped by the user (KeyboardInterrupt)."
                if isinstance(exc, RunTerminated):
                    error = "Stopped by SIGTERM."
                    print(
                        f"mlzen: run '{name}' stopped by SIGTERM: its running steps were "
                        "marked stopped.",
                        file=sys.stderr,
                    )
                raise
            except BaseException:
                error = traceback.format_exc()
                raise
            finally:
                step_errors = {o.step_id: o.error for o in failed if o.error}
                unrecorded = self._record_end(run_id, name, status, error, step_errors)
                if tracker is not None and handle.tracker_run is not None:
                    try:
                        tracker.end_run(handle.tracker_run, status=status)
                    except Exception as exc:  # the run is recorded; say what the tracker missed
                        print(
                            f"mlzen: warning: the experiment tracker missed the end: {exc}",
                            file=sys.stderr,
                        )
                if progress is not None:
                    progress.finish(status)
                if unrecorded is not None:
                    raise unrecorded
        run = self.get_pipeline_run(run_id)
        if failed:
            first = failed[0]
            last_line = (first.error or "").strip().splitlines()[-1:] or ["unknown error"]
            raise RunFailedError(
                f"Run '{name}' failed in step '{first.step_id}': {last_line[0]}\n"
                f"Its traceback is in Client().get_pipeline_run('{name}')"
                f".steps['{first.step_id}'].error. Fix the step, then resume the run with "
                f"Client().get_pipeline_run('{name}').resume().",
                run=run,
                run_id=run_id,
                step_name=first.step_id,
            )
        return run

    def _record_end(
        self, run_id: str, name: str, status: str, error: str | None, step_errors: dict[str, str]
    ) -> StoreError | None:
        """Record how a run ended; the error to raise if the store could not be reached
        (e.g. the team server went away mid-run)."""
        try:
            self.store.finish_run(run_id, status, error, step_errors)
        except StoreError as exc:
            unrecorded = StoreError(
                f"Run '{name}' could not be recorded: {exc.message}\nThe artifacts of its "
                "finished steps are kept in the artifact store. Once the store is back, "
                f"complete the run with 'mlzen runs resume {name}' "
                f"(or Client().get_pipeline_run('{name}').resume()).",
                **{**exc.fields, "run_id": run_id, "run_name": name},
            )
            unrecorded.__cause__ = exc
            return unrecorded
        return None

    # -- pipelines and runs -------------------------------------------------------------

    def list_pipelines(self) -> list[dict[str, Any]]:
        """Every pipeline (name, id, created_at, run_count), newest first."""
        from mlzen.store import queries

        return queries.list_pipelines(self.store)

    def get_pipeline(self, name: str) -> dict[str, Any]:
        from mlzen.store import queries

        return queries.get_pipeline(self.store, name)

    def _runs(self, rows: list[dict[str, Any]]) -> list[PipelineRun]:
        from mlzen.store import queries

        running = [row["id"] for row in rows if row["status"] == "running"]
        if running and self.store.expire_stale_runs(running):
            refreshed = {r: queries.find_run(self.store, r) for r in running}
            rows = [refreshed.get(row["id"], row) for row in rows]
        return [PipelineRun(self, row) for row in rows]

    def get_pipeline_run(self, name_or_id: str) -> PipelineRun:
        """A run by id, name, unique id prefix, or ``"latest"``.

        A run whose driver stopped sending heartbeats is marked ``crashed`` on read.
        """
        from mlzen.store import queries

        if name_or_id == "latest":
            rows = queries.list_runs(self.store, limit=1)
            if not rows:
                raise NotFoundError("There are no runs yet. Run a pipeline first.", run="latest")
            return self._runs(rows)[0]
        return self._runs([queries.find_run(self.store, name_or_id)])[0]

    def list_pipeline_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRun]:
        """Runs, newest first, filtered by pipeline name, status and creation time."""
        from mlzen.store import queries

        rows = queries.list_runs(
            self.store,
            pipeline=pipeline,
            status=status,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
        )
        return self._runs(rows)

    def get_run_step(self, step_run_id: str) -> StepRun:
        from mlzen.store import queries

        return StepRun(self, queries.get_step_run(self.store, step_run_id))

    # -- artifacts ----------------------------------------------------------------------

    def list_artifacts(self) -> list[dict[str, Any]]:
        """Every artifact name with its latest version number."""
        from mlzen.store import queries

        return queries.list_artifacts(self.store)

    def list_artifact_versions(
        self, name: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[ArtifactVersion]:
        """Artifact versions, newest first, optionally only those of artifact ``name``."""
        from mlzen.store import queries

        rows = queries.list_artifact_versions(self.store, name, limit=limit, offset=offset)
        return [ArtifactVersion(self, row) for row in rows]

    def get_artifact_version(
        self, name_or_id: str, version: int | str | None = None
    ) -> ArtifactVersion:
        """The latest version of artifact ``name_or_id``, or ``version``; or a version by id.

        Example:
            >>> Client().get_artifact_version("raw").load()
        """
        from mlzen.store import queries

        return ArtifactVersion(self, queries.find_artifact_version(self.store, name_or_id, version))

    def compare_runs(
        self, old: PipelineRun | str, new: PipelineRun | str, *, artifact: str | None = None
    ) -> RunDiff:
        """What changed from run ``old`` to run ``new``: parameters, metadata, code, outputs.

        Example:
            >>> Client().compare_runs("training-1", "latest").artifacts[0].dataframe.columns
        """
        from mlzen.comparison import compare_runs

        old_run = old if isinstance(old, PipelineRun) else self.get_pipeline_run(old)
        new_run = new if isinstance(new, PipelineRun) else self.get_pipeline_run(new)
        return compare_runs(self, old_run, new_run, artifact=artifact)

    # -- models -------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        """Every model, by name, with its version count and staged versions."""
        from mlzen.model_versions import RegisteredModel
        from mlzen.store import models

        return [RegisteredModel(self, row) for row in models.list_models(self.store)]

    def get_model(self, name: str) -> RegisteredModel:
        """The model called ``name``.

        Raises:
            NotFoundError: no such model; lists the known ones.
        """
        from mlzen.model_versions import RegisteredModel
        from mlzen.store import models

        return RegisteredModel(self, models.get_model(self.store, name))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """The versions of model ``name``, newest first.

        Raises:
            NotFoundError: no such model.
        """
        from mlzen.model_versions import ModelVersion
        from mlzen.store import models

        models.get_model(self.store, name)
        return [ModelVersion(self, row) for row in models.list_versions(self.store, name)]

    def get_model_version(self, name_or_id: str, version: int | str | None = None) -> ModelVersion:
        """A version of model ``name_or_id``: by number, ``"latest"`` (the default),
        ``"staging"``, ``"production"`` or ``"archived"`` (the newest archived one); or a
        version by its id.

        Raises:
            NotFoundError: no such model or version; lists the model's versions.

        Example:
            >>> Client().get_model_version("churn", "production").get_artifact("model").load()
        """
        from mlzen.model_versions import ModelVersion
        from mlzen.store import models

        return ModelVersion(self, models.find_version(self.store, name_or_id, version))

    def _artifact_versions_by_name(self, ids: dict[str, str]) -> dict[str, ArtifactVersion]:
        from mlzen.store import queries

        rows = queries.get_artifact_versions(self.store, ids.values())
        return {name: ArtifactVersion(self, rows[i]) for name, i in ids.items() if i in rows}

    # -- metadata -----------------------------------------------------------------------

    def add_metadata(self, entity_type: str, entity_id: str, values: dict[str, Any]) -> None:
        """Attach metadata to a ``pipeline_run``, ``step_run``, ``artifact_version`` or
        ``model_version``."""
        self.store.add_metadata(entity_type, entity_id, values)

    def _metadata(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        from mlzen.store import queries

        return queries.metadata_of(self.store, entity_type, entity_id)
