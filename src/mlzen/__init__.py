"""mlzen: plain Python functions become steps, steps become data-flow pipelines, and
every value that flows between them becomes a versioned, typed artifact.

Example:
    >>> from mlzen import step, pipeline, Client
    >>> @step
    ... def load() -> int:
    ...     return 3
    >>> @pipeline
    ... def hello():
    ...     load()
    >>> run = hello()
    >>> run.steps["load"].outputs["output"].load()
    3
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlzen.errors import MlzenError as MlzenError

if TYPE_CHECKING:
    from mlzen.artifacts.materializer import Materializer as Materializer
    from mlzen.artifacts.materializer import register_materializer as register_materializer
    from mlzen.artifacts.visualization import Visualization as Visualization
    from mlzen.client import ArtifactVersion as ArtifactVersion
    from mlzen.client import Client as Client
    from mlzen.client import PipelineRun as PipelineRun
    from mlzen.client import StepRun as StepRun
    from mlzen.comparison import compare as compare
    from mlzen.deployers.step import deploy_model as deploy_model
    from mlzen.model import Model as Model
    from mlzen.model_versions import ModelVersion as ModelVersion
    from mlzen.pipelines import Pipeline as Pipeline
    from mlzen.pipelines import pipeline as pipeline
    from mlzen.runtime.context import StepContext as StepContext
    from mlzen.runtime.context import get_step_context as get_step_context
    from mlzen.runtime.context import log_metadata as log_metadata
    from mlzen.steps import Step as Step
    from mlzen.steps import step as step

__version__ = "0.1.0"

# Loaded on first use so that `import mlzen` (and the CLI) stay light.
_LAZY = {
    "Pipeline": "mlzen.pipelines",
    "pipeline": "mlzen.pipelines",
    "Step": "mlzen.steps",
    "step": "mlzen.steps",
    "ArtifactVersion": "mlzen.client",
    "Client": "mlzen.client",
    "PipelineRun": "mlzen.client",
    "StepRun": "mlzen.client",
    "compare": "mlzen.comparison",
    "deploy_model": "mlzen.deployers.step",
    "Model": "mlzen.model",
    "ModelVersion": "mlzen.model_versions",
    "StepContext": "mlzen.runtime.context",
    "get_step_context": "mlzen.runtime.context",
    "log_metadata": "mlzen.runtime.context",
    "Materializer": "mlzen.artifacts.materializer",
    "register_materializer": "mlzen.artifacts.materializer",
    "Visualization": "mlzen.artifacts.visualization",
}

__all__ = [
    "ArtifactVersion",
    "Client",
    "Materializer",
    "MlzenError",
    "Model",
    "ModelVersion",
    "Pipeline",
    "PipelineRun",
    "Step",
    "StepContext",
    "StepRun",
    "Visualization",
    "compare",
    "deploy_model",
    "get_step_context",
    "log_metadata",
    "pipeline",
    "register_materializer",
    "step",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mlzen' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
