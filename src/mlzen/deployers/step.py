"""``deploy_model``: a step that serves a model version from inside a pipeline.

Example:
    >>> from mlzen import Model, deploy_model, pipeline
    >>> @pipeline(model=Model(name="churn"))
    ... def train_and_serve():
    ...     model = train(load())
    ...     deploy_model("churn", port=8000, after=model)   # this run's new version

The service runs on the machine that runs the step, and keeps running after the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mlzen.steps import step


@step(enable_cache=False)
def deploy_model(
    model_name: str,
    version: str | int | None = None,
    port: int | None = None,
    name: str | None = None,
    host: str | None = None,
    artifact: str = "model",
) -> Annotated[dict[str, Any], "deployment"]:
    """Serve a version of ``model_name`` over HTTP and return where it answers.

    Args:
        model_name: The model.
        version: A number, ``"latest"``, ``"staging"`` or ``"production"``; by default
            the version this run creates when the pipeline (or step) has
            ``model=Model(name=model_name)``, else the latest.
        port: The port (default: the previous deployment's of this name, or a free one).
        name: The deployment's name (default: ``<model_name>-<version>``).
        host: The address to listen on (default ``127.0.0.1``).
        artifact: Which of the version's artifacts to serve.

    Returns:
        The deployment: ``name``, ``url``, ``status``, model, version, stage, artifact
        and content hash (the ``deployment`` artifact).

    Never cached: each run deploys.
    """
    from mlzen.client import Client
    from mlzen.deployers.deployments import deploy
    from mlzen.runtime.context import current_step_context

    context = current_step_context()
    current = context.model_version if context is not None else None
    if version is None and current is not None and current.model_name == model_name:
        target: Any = Client().get_model_version(current.id)
        name = name or f"{model_name}-{current.number}"
    else:
        target = f"{model_name}:{version}" if version is not None else model_name
    deployment = deploy(target, name=name, host=host, port=port, artifact=artifact)
    return {
        key: value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
        for key, value in deployment.to_dict().items()
    }
