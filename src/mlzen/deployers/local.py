"""The ``local`` model deployer: each deployment is a background process on this machine.

The process is ``python -m mlzen.deployers.serving ...`` (uvicorn + FastAPI), started
through ``/bin/sh`` in a session of its own, so it is nobody's child: it outlives the
command that deployed it, a Ctrl-C in that terminal does not reach it, and it is reaped
by the system when it ends. Its stdout and stderr go to
``<project>/.mlzen/deployments/<name>.log``.

A deployment is checked live by its process (still there, and still the service of that
name: a recycled pid is not mistaken for it) and by ``GET /health``. Stopping sends
SIGTERM (SIGKILL after a grace period) and returns once the port can be bound again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.config import Settings, load_settings
from mlzen.deployers.base import CRASHED, RUNNING, STARTING, STOPPED, Deployment, DeploymentRequest
from mlzen.errors import DeploymentError
from mlzen.flavors import Flavor, ModelDeployerComponent, deferred_config

if TYPE_CHECKING:
    from pydantic import BaseModel

DEFAULT_HOST = "127.0.0.1"
SERVING_MODULE = "mlzen.deployers.serving"
LOG_FOLDER = "deployments"
#: Seconds a service gets to exit after SIGTERM before it is killed.
STOP_GRACE = 15.0
#: Seconds to wait, after the process is gone, for its port to be free.
PORT_RELEASE = 10.0
_POLL = 0.1
# Started in the background by a shell that then exits: the service is reparented away
# from the deploying process, which could otherwise leave it a zombie.
_LAUNCH = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


class LocalModelDeployer(ModelDeployerComponent):
    """Runs each deployment as a local background process (see the module docstring).

    Args:
        host: The address services listen on unless a deployment names one.
        startup_timeout: Seconds a service has to load its model and answer ``/health``.
        settings: The project's settings (where logs go); read on first use by default.
    """

    flavor = "local"

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        startup_timeout: float = 120.0,
        settings: Settings | None = None,
    ) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def start(self, request: DeploymentRequest) -> Deployment:
        host = request.host or self.host
        port = request.port
        if port is None:
            reuse = request.previous_port
            port = reuse if reuse and port_is_free(host, reuse) else free_port(host)
        if not port_is_free(host, port):
            raise DeploymentError(
                f"Port {port} on {host} is in use, so deployment '{request.name}' cannot "
                "listen on it. Pick another with --port, or leave --port out to get a free "
                "one.",
                deployment=request.name,
                port=port,
            )
        log_path = self.settings.project_dir / LOG_FOLDER / f"{request.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            SERVING_MODULE,
            "--name",
            request.name,
            "--host",
            host,
            "--port",
            str(port),
            "--artifact-version",
            request.served.artifact_version_id,
            "--stack",
            request.stack,
            "--served",
            json.dumps(request.served.to_dict()),
            "--declared",
            json.dumps(request.declared_input),
        ]
        with log_path.open("a", encoding="utf-8") as log:
            log.write(
                f"mlzen: starting deployment '{request.name}' of "
                f"{request.served.describe()} on {host}:{port}\n"
            )
        pid = _launch(command, log_path, self.settings)
        return Deployment(
            name=request.name,
            flavor=self.flavor,
            status=STARTING,
            served=request.served,
            url=service_url(host, port),
            pid=pid,
            log_path=str(log_path),
            config={
                "host": host,
                "port": port,
                "stack": request.stack,
                "served": request.served.to_dict(),
                "declared_input": request.declared_input,
            },
        )

    def wait_ready(self, deployment: Deployment) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if not is_service_process(deployment.pid, deployment.name):
                raise DeploymentError(
                    f"Deployment '{deployment.name}' exited while starting. The end of its "
                    f"log ({deployment.log_path}):\n{self.logs(deployment, 15).rstrip()}\n"
                    "Fix the cause and deploy again.",
                    deployment=deployment.name,
                    log_path=deployment.log_path,
                )
            if is_healthy(deployment.url, deployment.name):
                return
            if time.monotonic() > deadline:
                self.stop(deployment)
                raise DeploymentError(
                    f"Deployment '{deployment.name}' did not answer {deployment.url}/health "
                    f"within {self.startup_timeout:g}s, so it was stopped. Its log: "
                    f"{deployment.log_path}. Give a large model more time with the "
                    "deployer's startup_timeout option.",
                    deployment=deployment.name,
                    log_path=deployment.log_path,
                )
            time.sleep(_POLL)

    def live_status(self, deployment: Deployment) -> str:
        if deployment.status == STOPPED:
            return STOPPED
        if not is_service_process(deployment.pid, deployment.name):
            return CRASHED
        if is_healthy(deployment.url, deployment.name):
            return RUNNING
        # Alive but not answering: still loading, or hung.
        return STARTING if deployment.status == STARTING else CRASHED

    def stop(self, deployment: Deployment) -> None:
        pid = deployment.pid
        if pid is not None and is_service_process(pid, deployment.name):
            _terminate(pid, deployment.name)
        host, port = deployment.config.get("host"), deployment.config.get("port")
        if host is None or port is None:
            return
        deadline = time.monotonic() + PORT_RELEASE
        while not port_is_free(host, port):
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"Deployment '{deployment.name}' stopped, but port {port} on {host} is "
                    "still in use by another process. Find it with 'ss -ltnp' (or lsof -i).",
                    deployment=deployment.name,
                    port=port,
                )
            time.sleep(_POLL)

    def logs(self, deployment: Deployment, tail: int | None = None) -> str:
        if not deployment.log_path:
            return ""
        # The record may come from a team server: read only this project's log folder.
        folder = (self.settings.project_dir / LOG_FOLDER).resolve()
        path = Path(deployment.log_path).resolve()
        if path.parent != folder or path.name != f"{deployment.name}.log":
            raise DeploymentError(
                f"Deployment '{deployment.name}' records a log outside this project's "
                f"{LOG_FOLDER} folder (another machine's, or a tampered record), so it is "
                "not read. Look at the log on the machine that deployed it.",
                deployment=deployment.name,
            )
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        if tail is None:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail:]) if tail > 0 else ""


def _launch(command: list[str], log_path: Path, settings: Settings) -> int:
    """Start ``command`` detached, its output appended to ``log_path``; its pid."""
    # The deploying process's folder stays importable, as a script's own modules are to
    # it: a model pickled with a class defined there loads in the service too.
    python_path = [os.getcwd(), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "MLZEN_PROJECT_ROOT": str(settings.project_root),
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        launched = subprocess.run(
            ["/bin/sh", "-c", _LAUNCH, "sh", str(log_path), *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=settings.project_root,
            start_new_session=True,
            check=True,
            timeout=30,
        )
        return int(launched.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise DeploymentError(
            f"Could not start the service process ({type(exc).__name__}: {exc}). The local "
            "deployer needs a POSIX system with /bin/sh.",
        ) from exc


def _terminate(pid: int, name: str) -> None:
    try:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while is_service_process(pid, name):
            if time.monotonic() > deadline:
                _signal(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_GRACE
            time.sleep(_POLL)
    except PermissionError:
        raise DeploymentError(
            f"Not allowed to stop deployment '{name}' (process {pid}): another user runs "
            "it. Stop it as that user.",
            deployment=name,
            pid=pid,
        ) from None


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def is_service_process(pid: int | None, name: str) -> bool:
    """Whether ``pid`` is a live service process of deployment ``name``.

    On Linux the process's command line must be the serving module's with this name, so
    a pid the system has since given to another process does not count; a zombie (an
    exited process not yet reaped) has no command line and does not count either.
    """
    if pid is None or pid <= 0:
        return False
    proc = Path("/proc")
    if proc.is_dir():
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False
        args = raw.decode(errors="replace").split("\0")
        if SERVING_MODULE not in args:
            return False
        return any(pair == ("--name", name) for pair in itertools.pairwise(args))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_healthy(url: str | None, name: str, timeout: float = 2.0) -> bool:
    """Whether ``url``/health answers as deployment ``name``."""
    if not url:
        return False
    import urllib.error
    import urllib.request

    # No proxy: the service is on this machine, and proxies from the environment
    # (HTTP_PROXY) would not reach it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(body, dict) and body.get("deployment") == name


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    Binds as servers do (``SO_REUSEADDR``, as uvicorn sets), so connections that linger in
    TIME_WAIT after a service stopped do not count, but a listening socket does.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def service_url(host: str, port: int) -> str:
    """The URL clients on this machine use for a service bound to ``host:port``."""
    connect = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    if ":" in connect:
        connect = f"[{connect}]"
    return f"http://{connect}:{port}"


def _config_class() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, Field

    class LocalModelDeployerConfig(BaseModel):
        """``host``: the default listening address; ``startup_timeout``: seconds a
        service has to load its model and answer."""

        model_config = ConfigDict(extra="forbid")

        host: str = Field(DEFAULT_HOST, min_length=1)
        startup_timeout: float = Field(120.0, gt=0)

    return LocalModelDeployerConfig


class LocalModelDeployerFlavor(Flavor):
    """``model_deployer.local``: a :class:`LocalModelDeployer`."""

    kind = "model_deployer"
    name = "local"
    config_class = deferred_config(_config_class)

    def build(self, config: Any) -> LocalModelDeployer:
        return LocalModelDeployer(config.host, config.startup_timeout)
