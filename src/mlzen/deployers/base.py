"""What a deployment is: the request a deployer serves and the record it leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Statuses, as recorded and as checked live.
STARTING, RUNNING, STOPPED, CRASHED = "starting", "running", "stopped", "crashed"


@dataclass(frozen=True)
class ServedModel:
    """The model version and artifact a deployment serves.

    Attributes:
        artifact_version_id: The artifact version the service loads.
        artifact_name: The name the model version knows it by (``model``).
        content_hash: Its content hash, to tell exactly which bytes are served.
        model_name: The model's name; ``None`` when an artifact is served directly.
        model_version_id: The model version's id.
        model_version: Its number.
        stage: Its stage when deployed.
    """

    artifact_version_id: str
    artifact_name: str
    content_hash: str
    model_name: str | None = None
    model_version_id: str | None = None
    model_version: int | None = None
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_version_id": self.model_version_id,
            "stage": self.stage,
            "artifact_name": self.artifact_name,
            "artifact_version_id": self.artifact_version_id,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedModel:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]

    def describe(self) -> str:
        """``churn:3 (production), artifact 'model'`` or ``artifact 'model'``."""
        artifact = f"artifact '{self.artifact_name}'"
        if self.model_name is None:
            return artifact
        stage = f" ({self.stage})" if self.stage and self.stage != "none" else ""
        return f"{self.model_name}:{self.model_version}{stage}, {artifact}"


@dataclass(frozen=True)
class DeploymentRequest:
    """What to deploy, and where.

    Attributes:
        name: The deployment's name (unique in the project).
        served: The model version and artifact to serve.
        host: The address to listen on; ``None`` for the deployer's default.
        port: The port; ``None`` lets the deployer choose.
        stack: The stack whose stores hold the artifact (the service loads it from there).
        declared_input: What the model version's metadata declares about its input
            (``input_schema`` / ``columns``), if anything.
        previous_port: The port an earlier deployment of this name had: reused when no
            port is given and it is free.
    """

    name: str
    served: ServedModel
    host: str | None
    port: int | None
    stack: str
    declared_input: dict[str, Any] = field(default_factory=dict)
    previous_port: int | None = None


@dataclass
class Deployment:
    """A deployment as recorded (and, after a live check, as it is now).

    Attributes:
        name: Its name.
        flavor: The model-deployer flavor that runs it (``local``).
        status: ``starting``, ``running``, ``stopped`` or ``crashed``.
        url: Where it answers, e.g. ``http://127.0.0.1:8000``.
        served: The model version and artifact it serves.
        pid: The service's process id (local deployer).
        log_path: The file the service writes its output to.
        config: How it was started (host, port, stack, ...).
    """

    name: str
    flavor: str
    status: str
    served: ServedModel
    url: str | None = None
    pid: int | None = None
    log_path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Deployment:
        """A deployment from its ``deployments`` table row."""
        config = dict(row["config"] or {})
        return cls(
            name=row["name"],
            flavor=row["flavor"],
            status=row["status"],
            served=ServedModel.from_dict(config.get("served") or {}),
            url=row["url"],
            pid=row["pid"],
            log_path=row["log_path"],
            config=config,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``mlzen deployments list --json``, the deploy step's output)."""
        return {
            "name": self.name,
            "status": self.status,
            "url": self.url,
            "flavor": self.flavor,
            **self.served.to_dict(),
            "pid": self.pid,
            "log_path": self.log_path,
            "host": self.config.get("host"),
            "port": self.config.get("port"),
            "stack": self.config.get("stack"),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def __repr__(self) -> str:
        return f"<Deployment {self.name} {self.status} {self.url or '-'}>"
