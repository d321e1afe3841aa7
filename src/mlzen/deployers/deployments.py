"""Deploying model versions with the stack's model deployer; listing, stopping, logs.

Every deployment is recorded in the stack's metadata store (``deployments`` table) under
a unique name; deploying a name that is already deployed replaces the old service (it is
stopped first). Statuses are checked live whenever deployments are listed or fetched,
and a change (a service that died) is recorded.

Example:
    >>> deployment = deploy("churn:production", port=8000)
    >>> deployment.url
    'http://127.0.0.1:8000'
    >>> stop_deployment(deployment.name)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlzen.deployers.base import (
    CRASHED,
    RUNNING,
    STOPPED,
    Deployment,
    DeploymentRequest,
    ServedModel,
)
from mlzen.errors import ConfigError, DeploymentError, NotFoundError, StoreError
from mlzen.stack import Stack, active_stack

if TYPE_CHECKING:
    from mlzen.client import ArtifactVersion
    from mlzen.flavors import ModelDeployerComponent
    from mlzen.model_versions import ModelVersion

DEFAULT_ARTIFACT = "model"
# The server roles that may record (and so start and stop) deployments.
WRITING_ROLES = ("editor", "admin")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def deploy(
    model: str | ModelVersion | ArtifactVersion,
    *,
    name: str | None = None,
    host: str | None = None,
    port: int | None = None,
    artifact: str = DEFAULT_ARTIFACT,
    stack: Stack | None = None,
) -> Deployment:
    """Serve a model version (or an artifact version) and wait until it answers.

    Args:
        model: ``"churn:production"``, ``"churn:3"``, ``"churn"`` (its latest version),
            a ``ModelVersion``, or an ``ArtifactVersion`` to serve directly.
        name: The deployment's name; by default the reference with ``-`` for ``:``
            (``churn-production``). An existing deployment of this name is replaced.
        host: Where the service listens (the deployer's default: ``127.0.0.1``).
        port: Its port; by default the port the replaced deployment had, if it is free,
            else any free port.
        artifact: Which of the model version's artifacts to serve.
        stack: The stack whose stores hold the model and whose deployer runs it
            (default: the active stack).

    Raises:
        NotFoundError: No such model, version or artifact.
        DeploymentError: The service did not start; the message quotes its log.
        StoreError: The store would not record the deployment (a viewer's key on a
            server); checked before anything starts.
    """
    stack = stack or active_stack()
    _check_may_record(stack, "Deploying")
    served, default_name, declared = _resolve(model, artifact, stack)
    name = name or default_name
    _check_name(name)
    _check_port(port)
    store = stack.metadata_store
    from mlzen.store import deployments as records

    previous_port = None
    row = records.get_deployment(store, name)
    if row is not None:
        previous = Deployment.from_row(row)
        previous_port = previous.config.get("port")
        if previous.status != STOPPED:
            deployer_for(stack, previous.flavor).stop(previous)
            records.update_deployment(store, name, status=STOPPED)
    deployer = deployer_for(stack)
    request = DeploymentRequest(
        name=name,
        served=served,
        host=host,
        port=port,
        stack=stack.name,
        declared_input=declared,
        previous_port=previous_port,
    )
    deployment = deployer.start(request)
    try:
        records.save_deployment(
            store,
            name=name,
            model_version_id=served.model_version_id,
            flavor=deployment.flavor,
            status=deployment.status,
            config=deployment.config,
            url=deployment.url,
            pid=deployment.pid,
            log_path=deployment.log_path,
        )
    except BaseException:
        # Unrecorded, it would run where 'mlzen deployments' neither lists nor stops it.
        deployer.stop(deployment)
        raise
    try:
        deployer.wait_ready(deployment)
    except DeploymentError:
        status = deployer.live_status(deployment)
        records.update_deployment(store, name, status=status if status == STOPPED else CRASHED)
        raise
    except BaseException:
        # Interrupted while waiting (Ctrl-C): leave nothing running behind.
        deployer.stop(deployment)
        records.update_deployment(store, name, status=STOPPED)
        raise
    deployment.status = RUNNING
    saved = records.update_deployment(store, name, status=RUNNING)
    return Deployment.from_row(saved) if saved else deployment


def _resolve(model: Any, artifact: str, stack: Stack) -> tuple[ServedModel, str, dict[str, Any]]:
    """What ``model`` refers to: the served model, a default name, declared input."""
    from mlzen.client import ArtifactVersion, Client
    from mlzen.deployers.predictor import DECLARED_KEYS
    from mlzen.model_versions import ModelVersion

    if isinstance(model, ArtifactVersion):
        model.folder_uri()  # refuses, before a service starts, files stored elsewhere
        served = ServedModel(
            artifact_version_id=model.id,
            artifact_name=model.name,
            content_hash=model.content_hash,
        )
        return served, f"{model.name}-{model.version}", {}
    if isinstance(model, str):
        ref = model.strip()
        model_name, _, version = ref.partition(":")
        if not model_name:
            raise ConfigError(
                f"'{model}' does not name a model. Use NAME or NAME:VERSION, e.g. "
                "churn:production or churn:3.",
                model=model,
            )
        model = Client(stack).get_model_version(model_name, version or None)
        default_name = ref.replace(":", "-")
    elif isinstance(model, ModelVersion):
        default_name = f"{model.name}-{model.number}"
    else:
        raise ConfigError(
            f"Cannot deploy a {type(model).__name__}. Pass 'NAME:VERSION', a ModelVersion "
            "or an ArtifactVersion.",
        )
    version_artifact = model.get_artifact(artifact)
    version_artifact.folder_uri()  # refuses, before a service starts, files stored elsewhere
    metadata = model.metadata
    served = ServedModel(
        artifact_version_id=version_artifact.id,
        artifact_name=artifact,
        content_hash=version_artifact.content_hash,
        model_name=model.name,
        model_version_id=model.id,
        model_version=model.number,
        stage=model.stage,
    )
    declared = {key: metadata[key] for key in DECLARED_KEYS if key in metadata}
    return served, default_name, declared


def list_deployments(*, stack: Stack | None = None, live: bool = True) -> list[Deployment]:
    """Every deployment, by name; with ``live``, each status checked now (and recorded
    if it changed)."""
    from mlzen.store import deployments as records

    stack = stack or active_stack()
    found = [Deployment.from_row(row) for row in records.list_deployments(stack.metadata_store)]
    if live:
        for deployment in found:
            _refresh(deployment, stack)
    return found


def get_deployment(name: str, *, stack: Stack | None = None, live: bool = True) -> Deployment:
    """Deployment ``name``, its status checked now with ``live``.

    Raises:
        NotFoundError: No such deployment; lists those there are.
    """
    stack = stack or active_stack()
    deployment = _recorded(name, stack)
    if live:
        _refresh(deployment, stack)
    return deployment


def stop_deployment(name: str, *, stack: Stack | None = None) -> Deployment:
    """Stop deployment ``name`` (terminate its service, wait until its port is free) and
    record it stopped. Stopping a stopped or crashed deployment only records that.

    Raises:
        NotFoundError: No such deployment.
        DeploymentError: The service could not be stopped.
        StoreError: The store would not record the stop (a viewer's key on a server).
    """
    from mlzen.store import deployments as records

    stack = stack or active_stack()
    _check_may_record(stack, "Stopping a deployment")
    deployment = _recorded(name, stack)
    if deployment.status != STOPPED:
        deployer_for(stack, deployment.flavor).stop(deployment)
    deployment.status = STOPPED
    saved = records.update_deployment(stack.metadata_store, name, status=STOPPED)
    return Deployment.from_row(saved) if saved else deployment


def deployment_logs(name: str, *, tail: int | None = None, stack: Stack | None = None) -> str:
    """The output of deployment ``name``'s service (the last ``tail`` lines if given).

    Raises:
        NotFoundError: No such deployment.
    """
    stack = stack or active_stack()
    deployment = _recorded(name, stack)
    return deployer_for(stack, deployment.flavor).logs(deployment, tail)


def service_info(deployment: Deployment, timeout: float = 5.0) -> dict[str, Any]:
    """What the service's ``GET /info`` says (``{}`` if it does not answer)."""
    if not deployment.url:
        return {}
    import json
    import urllib.request

    # No proxy from the environment: the service is reached directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{deployment.url}/info", timeout=timeout) as response:
            info = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def deployer_for(stack: Stack, flavor: str | None = None) -> ModelDeployerComponent:
    """The stack's model deployer (``local`` when the stack names none); with
    ``flavor``, one of that flavor (the stack's own if it is of it): deployments made
    with another stack stay manageable."""
    from mlzen.deployers.local import LocalModelDeployer

    deployer = stack.model_deployer or LocalModelDeployer(settings=stack.settings)
    if flavor is None or flavor == deployer.flavor:
        return deployer
    if flavor == LocalModelDeployer.flavor:
        return LocalModelDeployer(settings=stack.settings)
    from mlzen import plugins

    flavor_class = plugins.flavor("model_deployer", flavor)
    config = flavor_class.validate_config({}, component=f"model_deployer flavor '{flavor}'")
    built: ModelDeployerComponent = flavor_class().build(config)
    return built


def _recorded(name: str, stack: Stack) -> Deployment:
    from mlzen.store import deployments as records

    row = records.get_deployment(stack.metadata_store, name)
    if row is None:
        known = [r["name"] for r in records.list_deployments(stack.metadata_store)]
        raise NotFoundError(
            f"No deployment named '{name}'. Deployments: {', '.join(known) or 'none'}. "
            "Start one with 'mlzen deploy MODEL:VERSION'.",
            deployment=name,
        )
    return Deployment.from_row(row)


def _refresh(deployment: Deployment, stack: Stack) -> None:
    from mlzen.store import deployments as records

    if deployment.status == STOPPED:
        return
    status = deployer_for(stack, deployment.flavor).live_status(deployment)
    if status != deployment.status:
        deployment.status = status
        records.update_deployment(stack.metadata_store, deployment.name, status=status)


def _check_may_record(stack: Stack, what: str) -> None:
    """Refuse before anything starts or stops when the store would refuse to record it:
    a project logged in to a server with a key whose role may not write.

    Raises:
        StoreError: Names the user, their role and the fix.
    """
    from mlzen.store.remote import RemoteMetadataStore

    store = stack.metadata_store
    if not isinstance(store, RemoteMetadataStore):
        return
    user = store.whoami()
    if user["role"] not in WRITING_ROLES:
        raise StoreError(
            f"{what} needs the 'editor' role on the mlzen server at {store.server_url}, "
            f"which records deployments; this project's key is {user['name']}'s, a "
            f"{user['role']}. Nothing was started or stopped. Log in with an editor's key: "
            f"'mlzen login {store.server_url} --api-key KEY'.",
            store_url=store.server_url,
            role=str(user["role"]),
        )


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"Deployment name '{name}' is not allowed: start with a letter or digit and use "
            "up to 100 letters, digits, '_', '.' and '-'.",
            deployment=name,
        )


def _check_port(port: int | None) -> None:
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise ConfigError(
            f"Port {port!r} is not a TCP port; use 1-65535, or leave it out to get a free one.",
            port=port,
        )
