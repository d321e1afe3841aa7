"""Every error mlzen raises on purpose.

The tree::

    MlzenError
    ├── ConfigError                 bad settings, YAML run config or option
    │   ├── InvalidNameError        a name that cannot be recorded ('/', '..', control chars)
    │   └── StorePairingError       an artifact store and a metadata store that do not
    │                               belong together (gc refuses to collect)
    ├── StepDefinitionError         a @step function mlzen cannot turn into a step
    ├── PipelineDefinitionError     a pipeline that cannot be built
    │   ├── PlaceholderMisuseError  a step output used as a value in the pipeline body
    │   ├── UnknownInputError       a step called with an argument it does not have
    │   ├── MissingInputError       a required step argument that was not given
    │   ├── ParameterError          a parameter that is not JSON-serialisable
    │   ├── DuplicateOutputError    two outputs of one step with the same name
    │   └── CycleError              the steps' dependencies form a cycle
    ├── StepExecutionError          a step raised (after its retries) or broke its contract
    ├── RunFailedError              a pipeline run that did not succeed
    ├── ArtifactError
    │   ├── MaterializerError       a value that could not be saved or loaded
    │   └── ArtifactCorruptedError  stored bytes whose hash no longer matches
    ├── StoreError                  the metadata store could not be used
    ├── LeaseLostError              a step-run write for a run its driver no longer holds
    ├── DeploymentError             a prediction service that could not start or stop
    ├── StageConflictError          a model stage another version holds (pass force)
    ├── TooManyAttemptsError        logins refused for a while after too many failures
    └── NotFoundError               a run, step, artifact or version that does not exist

Each message names the thing at fault and ends with what to do about it. Errors
carry the culprit as structured fields (``step_name``, ``argument``, ``artifact_uri``)
so the CLI and REST layers can render them without parsing text.
"""

from __future__ import annotations

from typing import Any


class MlzenError(Exception):
    """Root of every error mlzen raises on purpose."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)


class ConfigError(MlzenError):
    """Invalid settings, run configuration or option value."""


class InvalidNameError(ConfigError):
    """A name (artifact, pipeline, run, model, ...) that cannot be recorded."""


class StorePairingError(ConfigError):
    """An artifact store and a metadata store that do not belong together, e.g. garbage
    collection with a metadata store that does not own the artifact store."""


class StepDefinitionError(MlzenError):
    """A function decorated with ``@step`` that cannot become a step."""


class PipelineDefinitionError(MlzenError):
    """A pipeline whose DAG cannot be built or is invalid."""


class PlaceholderMisuseError(PipelineDefinitionError):
    """A step's output was used as a real value while the pipeline was being traced."""


class UnknownInputError(PipelineDefinitionError):
    """A step was called with an argument its function does not take."""


class MissingInputError(PipelineDefinitionError):
    """A step was called without a required argument."""


class ParameterError(PipelineDefinitionError):
    """A step or pipeline parameter that cannot be recorded (not JSON-serialisable)."""


class DuplicateOutputError(PipelineDefinitionError):
    """Two outputs of one step share a name."""


class CycleError(PipelineDefinitionError):
    """The dependencies between step invocations form a cycle."""


class StepExecutionError(MlzenError):
    """A step failed while running, after all its retries."""


class RunFailedError(MlzenError):
    """A pipeline run ended in a state other than completed.

    Attributes:
        run: the run (a ``PipelineRun``), to inspect or ``resume()``.
        run_id: its id.
        step_name: the invocation id of the first step that failed.
    """

    run: Any
    run_id: str
    step_name: str


class ArtifactError(MlzenError):
    """A problem with a stored artifact."""


class MaterializerError(ArtifactError):
    """A value could not be saved or loaded by its materializer."""


class ArtifactCorruptedError(ArtifactError):
    """The stored bytes of an artifact do not match the content hash recorded for them."""


class StoreError(MlzenError):
    """The metadata store could not be opened, migrated or written."""


class LeaseLostError(MlzenError):
    """A step run written for a run that is not ``running``, or whose driver's lease ran out.

    A run belongs to the driver that created it, for as long as the driver renews its
    lease (heartbeats). A write from a process that outlived its driver, or for a run
    that was stopped or has finished, is refused.

    Attributes:
        run_id: the run.
        status: the run's status (``running`` when only its lease ran out).
        reclaimable: whether the run's driver may still take it back: the run is
            ``crashed`` (or about to be) only because its lease ran out, and a live
            driver's next heartbeat makes it ``running`` again.
        lease_seconds: the run's lease.
    """

    run_id: str
    status: str
    reclaimable: bool
    lease_seconds: float


class StageConflictError(MlzenError):
    """Promoting a model version to a stage another version holds, without ``force``."""


class DeploymentError(MlzenError):
    """A model deployment that could not be started, reached or stopped."""


class TooManyAttemptsError(MlzenError):
    """Too many logins for one user or from one address; ``retry_after`` says how many
    seconds until they are accepted again."""


class NotFoundError(MlzenError):
    """A run, step run, pipeline, artifact or version that does not exist."""
