"""The one settings object, read from the environment and the project file.

=========================  ===============================  ====================================
setting                    environment variable             default
=========================  ===============================  ====================================
``project_root``           ``MLZEN_PROJECT_ROOT``           nearest folder upwards holding
                                                            ``.mlzen/``, else the current folder
``store_url``              ``MLZEN_STORE_URL``              ``sqlite:///<root>/.mlzen/mlzen.db``
``artifact_root``          ``MLZEN_ARTIFACT_ROOT``          ``<root>/.mlzen/artifacts``
``heartbeat_interval``     ``MLZEN_HEARTBEAT_INTERVAL``     ``5`` seconds between run heartbeats
``lease_seconds``          ``MLZEN_LEASE_SECONDS``          ``60``: a run silent this long crashed
``max_workers``            ``MLZEN_MAX_WORKERS``            ``0`` = as many as the DAG allows
``executor``               ``MLZEN_EXECUTOR``               ``threads`` (or ``processes``)
``progress``               ``MLZEN_PROGRESS``               ``1``: a line per step on stderr; ``0``
                                                            runs silently
``stack``                  ``MLZEN_STACK``                  the stack runs use; unset: the one
                                                            ``mlzen stack set`` stored, else
                                                            ``local``
``server_url``             ``MLZEN_SERVER_URL``             unset: runs are recorded in
                                                            ``store_url``; set (``mlzen login``):
                                                            on this mlzen server
``api_key``                ``MLZEN_API_KEY``                the key for ``server_url``; only in
                                                            the environment or the credentials
                                                            file ``mlzen login`` writes
``max_parameter_bytes``    ``MLZEN_MAX_PARAMETER_BYTES``    ``1048576``: the largest parameter
                                                            (as JSON) a run accepts
``max_request_bytes``      ``MLZEN_MAX_REQUEST_BYTES``      ``33554432`` (32 MiB): the largest
                                                            request body the server and model
                                                            services accept (413 beyond it)
=========================  ===============================  ====================================

The project file ``<root>/.mlzen/config.yaml`` may set the same keys (without the
prefix, lower case) except ``api_key``; the environment wins over the file.
``mlzen login`` writes ``server_url`` and ``api_key`` to ``<root>/.mlzen/credentials.yaml``
(mode 0600), which wins over ``config.yaml``; the environment wins over both.
``mlzen logout`` removes it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path

from mlzen.errors import ConfigError
from mlzen.yaml_files import read_yaml

PROJECT_DIR_NAME = ".mlzen"
CREDENTIALS_FILE = "credentials.yaml"
EXECUTORS = ("threads", "processes")


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one project."""

    project_root: Path
    store_url: str
    artifact_root: str
    heartbeat_interval: float = 5.0
    lease_seconds: float = 60.0
    max_workers: int = 0
    executor: str = "threads"
    progress: int = 1
    stack: str = ""
    server_url: str = ""
    api_key: str = dataclasses.field(default="", repr=False)
    max_parameter_bytes: int = 1024 * 1024
    max_request_bytes: int = 32 * 1024 * 1024

    @property
    def project_dir(self) -> Path:
        """The ``.mlzen`` folder holding the default store and artifacts."""
        return self.project_root / PROJECT_DIR_NAME


def find_project_root(start: Path | None = None) -> Path:
    """Return the nearest folder upwards from ``start`` that holds ``.mlzen/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_DIR_NAME).is_dir():
            return folder
    return here


def _read_project_file(root: Path, name: str = "config.yaml") -> dict[str, object]:
    path = root / PROJECT_DIR_NAME / name
    if not path.is_file():
        return {}
    data = read_yaml(path, what=str(path), fix="Fix the file or remove it.") or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of settings, not {type(data).__name__}. "
            "Write it as 'key: value' lines.",
            path=str(path),
        )
    return data


def _coerce(name: str, raw: object, kind: type) -> object:
    def wrong() -> ConfigError:
        return ConfigError(
            f"Setting '{name}' must be {kind.__name__}, got {raw!r}. "
            f"Fix MLZEN_{name.upper()} or '{name}' in .mlzen/config.yaml.",
            setting=name,
        )

    # YAML gives typed values: 'max_workers: 2.5', 'lease_seconds: true' or
    # 'executor: [threads]' are mistakes that a plain int()/float()/str() would hide.
    if isinstance(raw, bool) or (kind is str and not isinstance(raw, str)):
        raise wrong()
    if kind is int and isinstance(raw, float) and not raw.is_integer():
        raise wrong()
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise wrong() from None
    if kind is float and value != value:  # NaN
        raise wrong()
    return value


def load_settings(**overrides: object) -> Settings:
    """Resolve settings from keyword overrides, then the environment, then the project file."""
    known = {f.name: f for f in fields(Settings)}
    for key in overrides:
        if key not in known:
            raise ConfigError(
                f"Unknown setting '{key}'. Known settings: {', '.join(sorted(known))}.",
                setting=key,
            )
    root_raw = overrides.pop("project_root", None) or os.environ.get("MLZEN_PROJECT_ROOT")
    root = Path(str(root_raw)).resolve() if root_raw else find_project_root()
    from_file = _read_project_file(root)
    if "api_key" in from_file:
        raise ConfigError(
            f"{root / PROJECT_DIR_NAME / 'config.yaml'} sets 'api_key': a key does not belong "
            "in a file that may be shared or committed. Remove it and run 'mlzen login URL "
            "--api-key KEY' (which keeps it in a private file), or set MLZEN_API_KEY.",
            setting="api_key",
        )
    login = _read_project_file(root, CREDENTIALS_FILE)
    # The login is the user's latest word on the server: it wins over config.yaml.
    from_file = {**from_file, **{k: v for k, v in login.items() if k in ("server_url", "api_key")}}
    for key in from_file:
        if key not in known or key == "project_root":
            raise ConfigError(
                f"Unknown setting '{key}' in {root / PROJECT_DIR_NAME / 'config.yaml'}. "
                f"Known settings: {', '.join(sorted(k for k in known if k != 'project_root'))}.",
                setting=key,
            )
    values: dict[str, object] = {}
    for name, field in known.items():
        if name == "project_root":
            continue
        raw = overrides.get(name)
        if raw is None:
            raw = os.environ.get(f"MLZEN_{name.upper()}")
        if raw is None:
            raw = from_file.get(name)
        if raw is None:
            continue
        kind = {"float": float, "int": int, "str": str}[str(field.type)]
        values[name] = _coerce(name, raw, kind)
    values.setdefault("store_url", f"sqlite:///{root / PROJECT_DIR_NAME / 'mlzen.db'}")
    values.setdefault("artifact_root", str(root / PROJECT_DIR_NAME / "artifacts"))
    if values.get("executor", "threads") not in EXECUTORS:
        raise ConfigError(
            f"Setting 'executor' must be one of {', '.join(EXECUTORS)}, "
            f"got {values['executor']!r}. Fix MLZEN_EXECUTOR or 'executor' in "
            ".mlzen/config.yaml.",
            setting="executor",
        )
    for name, minimum, strict in (
        ("heartbeat_interval", 0, True),
        ("lease_seconds", 0, True),
        ("max_workers", 0, False),
        ("max_parameter_bytes", 0, True),
        ("max_request_bytes", 0, True),
    ):
        value = values.get(name)
        if value is not None and (value <= minimum if strict else value < minimum):  # type: ignore[operator]
            bound = "greater than 0" if strict else "0 or more"
            raise ConfigError(
                f"Setting '{name}' must be {bound}, got {value!r}. Fix "
                f"MLZEN_{name.upper()} or '{name}' in .mlzen/config.yaml.",
                setting=name,
            )
    return Settings(project_root=root, **values)  # type: ignore[arg-type]
