"""``Model``: which model (and which of its versions) a run's outputs belong to.

Passed as ``model=`` to ``@pipeline`` or ``@step``, a ``Model`` links every output
artifact of the run (or of the step) to a *model version* in the metadata store:

* ``Model("churn")`` creates a new version for each run, numbered 1, 2, 3, ... per
  model. The version is created once per run, by whichever step links to it first.
* ``Model("churn", version=3)``, ``"latest"``, ``"staging"`` or ``"production"`` links
  to that existing version instead.

A model version moves through the stages ``none`` → ``staging`` → ``production`` →
``archived`` with ``Client().get_model_version(...).promote(stage)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlzen.errors import ConfigError
from mlzen.names import check_name

#: The stages a model version can be in; a new version starts in ``none``.
STAGES = ("none", "staging", "production", "archived")
#: Stages that at most one version of a model holds at a time.
EXCLUSIVE_STAGES = ("staging", "production")
#: Names of versions that ``Model(version=...)`` may refer to besides a number.
VERSION_NAMES = ("latest", "staging", "production")


def normalise_version(version: int | str | None, model_name: str) -> str | None:
    """``version`` as stored in a spec: ``None``, ``"latest"``, a stage or a number.

    Raises:
        ConfigError: not a positive number, ``latest``, ``staging`` or ``production``.
    """
    if version is None:
        return None
    if isinstance(version, bool):
        pass
    elif isinstance(version, int):
        if version >= 1:
            return str(version)
    elif isinstance(version, str):
        text = version.strip().lower()
        if text in VERSION_NAMES:
            return text
        if text.isascii() and text.isdigit() and int(text) >= 1:
            return str(int(text))
    raise ConfigError(
        f"Model '{model_name}' has version={version!r}. Use None (a new version per run), "
        f"a version number (1, 2, ...), or one of {', '.join(VERSION_NAMES)}.",
        model_name=model_name,
        version=version,
    )


def check_model_name(name: Any) -> str:
    """``name`` if it can name a model.

    Raises:
        ConfigError: empty, not a string, or containing ``:`` (which separates the
            version in ``NAME:VERSION`` on the command line).
        InvalidNameError: containing ``/``, ``..`` or control characters.
    """
    if not isinstance(name, str) or not name.strip() or ":" in name or len(name) > 255:
        raise ConfigError(
            f"{name!r} cannot name a model. Use a non-empty string of at most 255 "
            "characters without ':', e.g. Model(name='churn').",
            model_name=name,
        )
    return check_name("model", name.strip())


@dataclass(frozen=True)
class Model:
    """The model a run's (or a step's) outputs are linked to.

    Args:
        name: the model's name; created on first use.
        version: ``None`` for a new version per run; or an existing version: its
            number, ``"latest"``, ``"staging"`` or ``"production"``.
        description: recorded with the model when it is created, and with each new
            version.

    Example:
        >>> @pipeline(model=Model(name="churn"))
        ... def training(): ...
    """

    name: str
    version: int | str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_model_name(self.name))
        object.__setattr__(self, "version", normalise_version(self.version, self.name))
        if self.description is not None and not isinstance(self.description, str):
            raise ConfigError(
                f"Model '{self.name}' has a description of type "
                f"{type(self.description).__name__}; pass a string.",
                model_name=self.name,
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in a pipeline spec."""
        return {"name": self.name, "version": self.version, "description": self.description}

    @classmethod
    def parse(cls, value: Any, where: str = "model=") -> Model:
        """A ``Model`` from a ``Model``, a ``"name"`` / ``"name:version"`` string or a
        mapping with ``name``, ``version`` and ``description`` (a YAML run config).

        Raises:
            ConfigError: anything else, naming ``where`` it came from.
        """
        if isinstance(value, Model):
            return value
        if isinstance(value, str):
            name, _, version = value.partition(":")
            return cls(name, version or None)
        if isinstance(value, dict):
            unknown = set(value) - {"name", "version", "description"}
            if unknown or "name" not in value:
                raise ConfigError(
                    f"{where} needs a mapping with 'name' (and optionally 'version' and "
                    f"'description'), got keys {sorted(map(str, value))}.",
                    key="model",
                    path=where,
                )
            return cls(value["name"], value.get("version"), value.get("description"))
        raise ConfigError(
            f"{where} got a {type(value).__name__}. Pass mlzen.Model(name=..., version=...) "
            "or a model name such as 'churn' or 'churn:production'.",
            key="model",
            path=where,
        )

    def __str__(self) -> str:
        return f"{self.name}:{self.version or 'new'}"


@dataclass(frozen=True)
class ModelVersionInfo:
    """The model version a running step's outputs are linked to
    (``get_step_context().model_version``).

    Attributes:
        id: the version's id (``Client().get_model_version(id)`` finds it).
        model_name: the model's name.
        number: the version number, 1, 2, ...
        stage: its stage when the step started.
    """

    id: str
    model_name: str
    number: int
    stage: str

    def __str__(self) -> str:
        return f"{self.model_name}:{self.number}"
