"""Handles on models and model versions, as ``Client`` returns them.

``Client().get_model_version("churn", "production")`` gives a :class:`ModelVersion`:
its number and stage, the run that made it, the artifacts linked to it (``.artifacts``,
``.get_artifact("model").load()``) and its metadata; ``.promote(stage)`` moves it.

Stages: a new version is in ``none``. ``staging`` and ``production`` are each held by at
most one version of a model. Promoting a version to a stage another version holds
archives that version, and needs ``force=True``: without it nothing changes and a
``StageConflictError`` names the holder. ``none`` and ``archived`` can be taken by any
number of versions, and any version (an archived one too) can be promoted again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlzen.errors import NotFoundError

if TYPE_CHECKING:
    from mlzen.client import ArtifactVersion, Client, PipelineRun


class ModelVersion:
    """One version of a model: its stage, the run that made it, its linked artifacts.

    Attributes:
        id: the version's id.
        name: the model's name.
        number: the version number (1, 2, ... per model).
        stage: ``none``, ``staging``, ``production`` or ``archived``.
        description: the description given with ``Model(...)``, if any.
        run_id: the run that created it (``None`` if that run was deleted).
        created_at: when it was created (UTC).
        updated_at: when its stage last changed (UTC).
    """

    def __init__(self, client: Client, row: dict[str, Any]) -> None:
        self._client = client
        self.id: str = row["id"]
        self.name: str = row["model_name"]
        self.model_id: str = row["model_id"]
        self.number: int = row["version"]
        self.stage: str = row["stage"]
        self.description: str | None = row["description"]
        self.run_id: str | None = row["run_id"]
        self.created_at: datetime = row["created_at"]
        self.updated_at: datetime = row["updated_at"]

    @property
    def version(self) -> int:
        """The version number (same as ``number``)."""
        return self.number

    @property
    def run(self) -> PipelineRun | None:
        """The pipeline run that created this version, ``None`` if it was deleted."""
        if self.run_id is None:
            return None
        return self._client.get_pipeline_run(self.run_id)

    @property
    def artifact_links(self) -> list[dict[str, Any]]:
        """Each link: ``name``, ``artifact_version_id``, ``step_run_id``, ``created_at``."""
        from mlzen.store import models

        return models.artifact_links(self._client.store, self.id)

    @property
    def artifacts(self) -> dict[str, ArtifactVersion]:
        """The artifact versions linked to this version, by output name."""
        return self._client._artifact_versions_by_name(
            {link["name"]: link["artifact_version_id"] for link in self.artifact_links}
        )

    def get_artifact(self, name: str) -> ArtifactVersion:
        """The artifact version linked under output name ``name`` (e.g. ``"model"``).

        Raises:
            NotFoundError: nothing is linked under that name; lists what is.
        """
        links = {link["name"]: link["artifact_version_id"] for link in self.artifact_links}
        if name not in links:
            linked = ", ".join(sorted(links)) or "nothing yet"
            raise NotFoundError(
                f"Version {self.number} of model '{self.name}' has no artifact '{name}'. "
                f"Linked: {linked}. A step's output is linked under its output name "
                "(Annotated[T, 'name']) when the step or its pipeline has model=.",
                model_name=self.name,
                version=self.number,
                artifact_name=name,
            )
        return self._client._artifact_versions_by_name({name: links[name]})[name]

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata logged on this version (``log_metadata(..., model=True)``)."""
        return self._client._metadata("model_version", self.id)

    def log_metadata(self, values: dict[str, Any]) -> None:
        """Attach key/value metadata to this version."""
        from mlzen.runtime.context import log_metadata

        log_metadata(values, model_version_id=self.id)

    def promote(self, stage: str, *, force: bool = False) -> ModelVersion:
        """Move this version to ``stage`` (``staging``, ``production``, ``archived`` or
        ``none``) and return it updated; this handle is updated too.

        Taking ``staging`` or ``production`` from another version archives that version
        in the same transaction, and needs ``force=True``.

        Raises:
            ConfigError: an unknown stage.
            StageConflictError: another version holds the stage and ``force`` is false.

        Example:
            >>> Client().get_model_version("churn", "latest").promote("production", force=True)
        """
        from mlzen.store import models

        result = models.promote(self._client.store, self.id, stage, force=force)
        self.stage = result["version"]["stage"]
        self.updated_at = result["version"]["updated_at"]
        return self

    def refresh(self) -> ModelVersion:
        """A fresh copy of this version from the store."""
        return self._client.get_model_version(self.id)

    def __repr__(self) -> str:
        return f"<ModelVersion {self.name}:{self.number} {self.stage}>"


class RegisteredModel:
    """A model: a name under which runs create numbered versions.

    Attributes:
        id, name, description, created_at: the model's record.
        version_count: how many versions it has.
        latest_version: the highest version number (``None`` without versions).
        staging_version, production_version: the number of the version in that stage,
            or ``None``.
    """

    def __init__(self, client: Client, row: dict[str, Any]) -> None:
        self._client = client
        self.id: str = row["id"]
        self.name: str = row["name"]
        self.description: str | None = row["description"]
        self.created_at: datetime = row["created_at"]
        self.version_count: int = row["version_count"]
        self.latest_version: int | None = row["latest_version"]
        self.staging_version: int | None = row["staging_version"]
        self.production_version: int | None = row["production_version"]

    @property
    def versions(self) -> list[ModelVersion]:
        """Its versions, newest first."""
        return self._client.list_model_versions(self.name)

    def get_version(self, version: int | str | None = None) -> ModelVersion:
        """A version by number, ``"latest"`` (the default) or stage."""
        return self._client.get_model_version(self.name, version)

    def __repr__(self) -> str:
        return f"<RegisteredModel {self.name} ({self.version_count} versions)>"
