"""The Ray orchestrator: every step invocation is a Ray task that calls ``run_step``.

The shared scheduling loop decides what runs when; this executor only starts
``run_step`` in a Ray worker and hands back the task's future, so retries, failure
handling, caching, logs, lineage and metadata are exactly those of the local
orchestrator. A worker builds its own metadata store (from the driver's URL) and
artifact store (from the driver's pickled store object) once, and keeps them for the
next task it runs.

Where it runs, by ``address``:

- unset: a local Ray cluster started in this process (``num_cpus`` sizes it), shut down
  when the run ends; if this process is already connected to Ray, that connection;
- ``"auto"``: the cluster this machine is a node of (``ray start`` here, or
  ``RAY_ADDRESS``);
- ``"host:port"``: the head node's GCS port, e.g. ``"127.0.0.1:6379"``;
- ``"ray://host:port"``: a remote cluster through Ray Client, e.g. ``"ray://head:10001"``.

A connection this process already has to the same cluster is reused and left open.
Every node needs mlzen and the steps' libraries installed. Workers import step code by
module name: the driver's ``sys.path`` (its own folders, not the interpreter's) goes to
them as ``PYTHONPATH``, which is enough on one machine or a shared filesystem;
elsewhere, ship the code with ``runtime_env={"working_dir": ...}``.

A step asks for cluster resources in its settings, and they become the task's request::

    @step(settings={"resources": {"cpus": 2, "gpus": 1, "memory": "4GB"}})

``memory`` takes bytes or a string: ``KB``/``MB``/``GB``/``TB`` are powers of 1000,
``KiB``/``MiB``/``GiB``/``TiB`` of 1024. A task asks for one CPU unless told otherwise.

Ray is imported only when a run starts, so ``mlzen`` works without it installed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
import sysconfig
import threading
from concurrent.futures import Future
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlzen.errors import ConfigError, MlzenError
from mlzen.flavors import Flavor, OrchestratorComponent
from mlzen.orchestrators.base import StepExecutor
from mlzen.runtime.run_step import StepLaunch, StepOutcome
from mlzen.runtime.worker import pickle_for_worker, pickle_invocation, run_pickled_step
from mlzen.store.metadata import MetadataStore

if TYPE_CHECKING:
    from mlzen.artifacts.store import ArtifactStore
    from mlzen.spec import PipelineSpec, StepSpec
    from mlzen.steps import Step

INSTALL_HINT = 'pip install "mlzen[ray]"'
NAMESPACE = "mlzen"
RESOURCE_OPTIONS = {"cpus": "num_cpus", "gpus": "num_gpus", "memory": "memory"}
MEMORY_UNITS = {
    "": 1,
    "B": 1,
    **{f"{p}{b}": 1000 ** (i + 1) for i, p in enumerate("KMGT") for b in ("", "B")},
    **{f"{p}I{b}": 1024 ** (i + 1) for i, p in enumerate("KMGT") for b in ("", "B")},
}
_MEMORY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")
_ADDRESS = re.compile(
    r"(?P<scheme>ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r":(?P<port>\d{1,5})"
)


# -- configuration -----------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a ``host:port`` or ``ray://host:port`` address."""
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        return None
    return match["scheme"] or "", match["host"].strip("[]"), int(match["port"])


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine through its loopback interface."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RayOrchestratorConfig(BaseModel):
    """Configuration of the Ray orchestrator.

    Attributes:
        address: Unset for a local cluster in this process; ``"auto"`` for the cluster
            this machine is a node of; ``"host:port"`` for a head node's GCS port;
            ``"ray://host:port"`` for Ray Client.
        num_cpus: CPUs of the local cluster started when ``address`` is unset (default:
            every core). A running cluster's CPUs are set by ``ray start --num-cpus``.
        runtime_env: Ray runtime environment for the workers (``env_vars``,
            ``working_dir``, ``pip``, ...); mlzen adds the driver's ``PYTHONPATH``.
        connect_timeout: Seconds the address has to answer before a run starts.
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)
    runtime_env: dict[str, Any] | None = None
    connect_timeout: float = Field(default=10.0, gt=0)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value == "auto" or parse_address(value) is not None:
            return value
        raise ValueError(
            f"{value!r} is not a Ray cluster address. Use 'auto' (the cluster this machine "
            "belongs to), 'host:port' (the head node's GCS port, e.g. '127.0.0.1:6379'), "
            "'ray://host:port' (Ray Client, e.g. 'ray://head:10001'), or leave it unset "
            "for a local cluster in this process."
        )

    @field_validator("runtime_env")
    @classmethod
    def _check_runtime_env(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        env_vars = (value or {}).get("env_vars")
        if env_vars is not None and not (
            isinstance(env_vars, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())
        ):
            raise ValueError(
                "runtime_env.env_vars must map variable names to string values, e.g. "
                "{'env_vars': {'OMP_NUM_THREADS': '1'}}."
            )
        return value

    @model_validator(mode="after")
    def _num_cpus_only_for_a_local_cluster(self) -> RayOrchestratorConfig:
        if self.num_cpus is not None and self.address is not None:
            raise ValueError(
                f"num_cpus sizes the local cluster started when address is unset; the "
                f"cluster at {self.address!r} has its own CPUs (set with `ray start "
                "--num-cpus`). Remove num_cpus or unset address."
            )
        return self


class RayOrchestrator(OrchestratorComponent):
    """Runs each step as a Ray task.

    Args:
        config: The configuration; or give its fields as keyword arguments.
    """

    def __init__(self, config: RayOrchestratorConfig | None = None, **fields: Any) -> None:
        if config is not None and fields:
            raise TypeError("Give RayOrchestrator a config or its fields, not both.")
        self.config = config if config is not None else RayOrchestratorConfig(**fields)

    @property
    def is_remote(self) -> bool:
        address = self.config.address
        if address is None or address == "auto":
            return False
        parsed = parse_address(address)
        return parsed is not None and not is_loopback(parsed[1])

    def executor(self, store: MetadataStore, artifacts: ArtifactStore) -> RayExecutor:
        return RayExecutor(self.config, store, artifacts)

    def check(self) -> None:
        """Fail fast if the configured address does not answer as a Ray cluster.

        Ray itself retries a wrong address for minutes, printing only warnings. A
        process already connected to Ray is left to the executor, which checks that the
        connection is to the same cluster.
        """
        address = self.config.address
        ray = sys.modules.get("ray")
        if address is None or address == "auto" or (ray is not None and ray.is_initialized()):
            return
        check_address(address, self.config.connect_timeout)

    def __repr__(self) -> str:
        return f"RayOrchestrator(address={self.config.address!r})"


class RayOrchestratorFlavor(Flavor):
    """The ``ray`` orchestrator flavor (``mlzen[ray]``)."""

    kind = "orchestrator"
    name = "ray"
    config_class = RayOrchestratorConfig

    def build(self, config: Any) -> RayOrchestrator:
        if not isinstance(config, RayOrchestratorConfig):
            config = RayOrchestratorConfig.model_validate(config)
        return RayOrchestrator(config)


# -- reaching the cluster ----------------------------------------------------------------

#: What an HTTP/2 client sends first (RFC 9113, 3.4), then an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 0x4


def check_address(address: str, timeout: float) -> None:
    """Check that something at ``address`` answers as a Ray head would, within ``timeout``.

    A head's GCS port and a Ray Client server both speak gRPC, whose server answers an
    HTTP/2 preface with a SETTINGS frame; anything else listening there (a web server, a
    database) does not. With TLS (``RAY_USE_TLS``) only the connection is checked.

    Raises:
        ConfigError: naming the address, what went wrong and the fix.
    """
    parsed = parse_address(address)
    if parsed is None:
        return
    _, host, port = parsed
    fix = (
        "Fix the Ray orchestrator's address: a head node's GCS port as `ray start --head` "
        "prints it (e.g. 127.0.0.1:6379), or ray://host:10001 for Ray Client; raise "
        "connect_timeout if the cluster is only slow."
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            connection.sendall(_HTTP2_PREFACE)
            answer = _receive(connection, 9)
    except TimeoutError:
        raise ConfigError(
            f"The Ray cluster at {address} did not answer within {timeout:g}s. {fix}",
            address=address,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Cannot connect to the Ray cluster at {address}: {exc.strerror or exc}. Start "
            f"the cluster (e.g. `ray start --head`), or: {fix}",
            address=address,
        ) from None
    if len(answer) < 9 or answer[3] != _SETTINGS_FRAME:
        raise ConfigError(
            f"Something listens at {address}, but it is not a Ray cluster (it does not "
            f"speak gRPC). {fix}",
            address=address,
        )


def _receive(connection: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes: fewer if the peer closes the connection first."""
    received = b""
    while len(received) < size:
        chunk = connection.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return received


# -- resources ---------------------------------------------------------------------------


def task_options(step: StepSpec) -> dict[str, Any]:
    """Ray task options for a step's ``resources`` setting.

    Raises:
        ConfigError: The setting is not a mapping of known, valid amounts.
    """
    resources = step.settings.get("resources")
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise _resource_error(step, "resources", resources, "a mapping such as {'cpus': 2}")
    unknown = sorted(set(resources) - set(RESOURCE_OPTIONS))
    if unknown:
        raise ConfigError(
            f"Step '{step.id}' asks for unknown resources {', '.join(map(repr, unknown))}. "
            f"Use {', '.join(RESOURCE_OPTIONS)}, e.g. "
            "settings={'resources': {'cpus': 2, 'gpus': 0, 'memory': '2GB'}}.",
            step_name=step.id,
            argument="resources",
        )
    options: dict[str, Any] = {}
    for key, option in RESOURCE_OPTIONS.items():
        if key in resources:
            value = resources[key]
            options[option] = (
                memory_bytes(step, value) if key == "memory" else _amount(step, key, value)
            )
    return options


def _amount(step: StepSpec, key: str, value: Any) -> float:
    # Ray takes fractions of one CPU or GPU (sharing it), and whole numbers above one.
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _resource_error(step, key, value, "a number of at least 0, e.g. 2 or 0.5")
    if value > 1 and value != int(value):
        raise _resource_error(step, key, value, "a fraction below 1 or a whole number")
    return value


def memory_bytes(step: StepSpec, value: Any) -> int:
    """Bytes for a memory amount: an int, or a string such as ``"2GB"`` or ``"512MiB"``."""
    amount: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and (match := _MEMORY.fullmatch(value)):
        factor = MEMORY_UNITS.get(match[2].upper())
        if factor is not None:
            amount = float(match[1]) * factor
    if amount is None or int(amount) <= 0:
        raise _resource_error(
            step, "memory", value, "bytes or an amount with a unit, e.g. '2GB', '512MiB'"
        )
    return int(amount)


def _resource_error(step: StepSpec, key: str, value: Any, wanted: str) -> ConfigError:
    return ConfigError(
        f"Step '{step.id}' asks for {key}={value!r}, which is not a valid resource amount. "
        f"Give {wanted} in its settings['resources'].",
        step_name=step.id,
        argument=f"resources.{key}" if key != "resources" else key,
    )


# -- the connection ----------------------------------------------------------------------


def import_ray() -> Any:
    """The ``ray`` module, or an error telling how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise MlzenError(
            f"The Ray orchestrator needs Ray, which cannot be imported ({exc}). Install it "
            f"with: {INSTALL_HINT}",
            package="ray",
        ) from exc
    return ray


def driver_paths() -> list[str]:
    """The folders on this process's ``sys.path`` that are not the interpreter's own."""
    own = {
        os.path.realpath(p)
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    own |= {os.path.realpath(p) for p in sysconfig.get_paths().values()}
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        inside_own = any(path == p or path.startswith(p + os.sep) for p in own)
        if os.path.exists(path) and not inside_own and path not in paths:
            paths.append(path)
    return paths


def worker_runtime_env(configured: dict[str, Any] | None) -> dict[str, Any]:
    """The configured runtime env, with the driver's folders on the workers' path."""
    runtime_env = dict(configured or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    paths = [env_vars["PYTHONPATH"]] if env_vars.get("PYTHONPATH") else []
    paths += driver_paths()
    if paths:
        env_vars["PYTHONPATH"] = os.pathsep.join(paths)
    runtime_env["env_vars"] = env_vars
    return runtime_env


def _covers(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a job's runtime env already holds everything in ``wanted``."""
    for key, value in wanted.items():
        if key == "env_vars":
            have = current.get("env_vars") or {}
            if any(have.get(name) != text for name, text in value.items()):
                return False
        elif current.get(key) != value:
            return False
    return True


class _Cluster:
    """This process's one connection to Ray, shared by every executor in it.

    Ray allows one connection per process. mlzen connects when no one has; it shuts
    down only a local cluster it started itself, once the last run using it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.address: str | None = None
        #: The runtime env mlzen connected with (Ray may rewrite it, e.g. a working_dir
        #: into an uploaded package, so it is compared as given).
        self.runtime_env: dict[str, Any] | None = None
        self.job_id: str | None = None
        self.owned = False
        self.users = 0

    def acquire(
        self, ray: Any, config: RayOrchestratorConfig, runtime_env: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Connect or reuse the connection; return the runtime env tasks must carry
        themselves (``None`` when the job's own covers it)."""
        with self._lock:
            if not ray.is_initialized():
                self._forget()
                self._connect(ray, config, runtime_env)
                self.runtime_env, self.job_id = runtime_env, _job_id(ray)
            else:
                if self.job_id != _job_id(ray):
                    self._forget()  # someone reconnected this process behind our back
                self._check_same_cluster(ray, config.address)
            self.users += 1
            if runtime_env == self.runtime_env:
                return None
            try:
                current = dict(ray.get_runtime_context().runtime_env or {})
            except Exception:
                current = {}
            return None if _covers(current, runtime_env) else runtime_env

    def release(self, ray: Any) -> None:
        with self._lock:
            self.users = max(0, self.users - 1)
            if self.owned and self.users == 0:
                self._forget()
                ray.shutdown()

    def _forget(self) -> None:
        self.address, self.runtime_env, self.job_id = None, None, None
        self.owned, self.users = False, 0

    def _connect(
        self, ray: Any, config: RayOrchestratorConfig, runtime_env: dict[str, Any]
    ) -> None:
        options: dict[str, Any] = {
            "namespace": NAMESPACE,
            "ignore_reinit_error": True,
            "log_to_driver": True,
            "runtime_env": runtime_env,
        }
        if config.address is None:
            # "local" always starts a new cluster; None would join one found through
            # RAY_ADDRESS or an earlier `ray start`.
            options.update(address="local", num_cpus=config.num_cpus, include_dashboard=False)
        else:
            options["address"] = config.address
        try:
            ray.init(**options)
        except Exception as exc:
            where = config.address or "a new local cluster"
            raise ConfigError(
                f"Cannot connect to the Ray cluster at {where}: {exc}. Start the cluster "
                "(e.g. `ray start --head`) or fix the Ray orchestrator's address; if the "
                "cluster uses token authentication, set RAY_AUTH_MODE=token here too.",
                address=config.address,
            ) from exc
        self.address, self.owned = config.address, config.address is None

    def _check_same_cluster(self, ray: Any, wanted: str | None) -> None:
        if wanted is None or wanted == "auto" or wanted == self.address:
            return
        try:
            current = ray.get_runtime_context().gcs_address
        except Exception:
            current = self.address or "another address"
        if not _same_endpoint(ray, wanted, current):
            raise ConfigError(
                f"This process is already connected to the Ray cluster at {current}, but "
                f"the Ray orchestrator asks for {wanted}. A process talks to one cluster: "
                "use that address, or call ray.shutdown() before the run.",
                address=wanted,
            )


def _job_id(ray: Any) -> str | None:
    try:
        return str(ray.get_runtime_context().get_job_id())
    except Exception:
        return None


def _same_endpoint(ray: Any, wanted: str, current: str) -> bool:
    parsed_wanted, parsed_current = parse_address(wanted), parse_address(current)
    if parsed_wanted is None or parsed_current is None or parsed_wanted[0]:
        return False  # Ray Client connections are recognised only by their address
    if parsed_wanted[2] != parsed_current[2]:
        return False
    hosts = {_host_ip(ray, parsed_wanted[1]), _host_ip(ray, parsed_current[1])}
    return len(hosts) == 1


def _host_ip(ray: Any, host: str) -> str:
    if is_loopback(host):
        return str(ray.util.get_node_ip_address())
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


_CLUSTER = _Cluster()


# -- the executor ------------------------------------------------------------------------


class RayExecutor(StepExecutor):
    """Starts each step invocation as a Ray task running ``run_step``."""

    def __init__(
        self, config: RayOrchestratorConfig, store: MetadataStore, artifacts: ArtifactStore
    ) -> None:
        self._config = config
        self._store = store
        self._artifacts = artifacts
        self._options: dict[str, dict[str, Any]] = {}
        self._ray: Any = None
        self._task: Any = None
        self._task_runtime_env: dict[str, Any] | None = None
        self._artifacts_blob = b""
        self._running: list[tuple[Any, Future[StepOutcome]]] = []

    def init(self, spec: PipelineSpec) -> None:
        # Every step's request is checked before a cluster is touched, so a typo fails
        # the run before it starts (or starts a cluster).
        self._options = {step.id: task_options(step) for step in spec.steps.values()}
        self._artifacts_blob = pickle_for_worker(self._artifacts)
        ray = import_ray()
        runtime_env = worker_runtime_env(self._config.runtime_env)
        self._task_runtime_env = _CLUSTER.acquire(ray, self._config, runtime_env)
        self._ray = ray
        try:
            if _CLUSTER.owned:
                _check_fits(ray.cluster_resources(), self._options)
            self._task = _ray_task()
        except BaseException:
            self.finalize()  # the scheduling loop finalizes only executors that started
            raise

    def submit(self, launch: StepLaunch, step: Step) -> Future[StepOutcome]:
        assert self._task is not None, "init() must run before submit()"
        options: dict[str, Any] = {
            "name": f"mlzen:{launch.step.id}",
            # A retry is run_step's to make (and record); Ray must not re-run a step
            # whose worker died.
            "max_retries": 0,
            **self._options.get(launch.step.id, {}),
        }
        if self._task_runtime_env is not None:
            options["runtime_env"] = self._task_runtime_env
        ref = self._task.options(**options).remote(
            self._store.url, self._artifacts_blob, pickle_invocation(launch, step)
        )
        future: Future[StepOutcome] = ref.future()
        self._running = [(r, f) for r, f in self._running if not f.done()]
        self._running.append((ref, future))
        return future

    def abort(self) -> None:
        for ref, future in self._running:
            if not future.done():
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: S112 - cancel the rest even if one cannot be
                    continue
        self._running = []

    def finalize(self) -> None:
        self._running = []
        if self._ray is not None:
            ray, self._ray = self._ray, None
            _CLUSTER.release(ray)


def _check_fits(available: dict[str, float], options: dict[str, dict[str, Any]]) -> None:
    """A local cluster cannot grow: a request larger than it would wait forever."""
    for step_id, wanted in options.items():
        for option, resource, unit in (
            ("num_cpus", "CPU", " CPUs"),
            ("num_gpus", "GPU", " GPUs"),
            ("memory", "memory", " bytes of memory"),
        ):
            amount = wanted.get(option) or 0
            if amount > available.get(resource, 0):
                raise ConfigError(
                    f"Step '{step_id}' asks for {amount:g}{unit}, but the local Ray cluster "
                    f"has {available.get(resource, 0):g}. Lower the step's resources "
                    "setting, or raise num_cpus on the Ray orchestrator.",
                    step_name=step_id,
                    argument=f"resources.{option.removeprefix('num_')}",
                )


@cache
def _ray_task() -> Any:
    return import_ray().remote(run_pickled_step)
