"""Materializers turn values into files and back, chosen by the value's type.

Dispatch walks ``type(value).__mro__`` and takes the first class that has a
materializer, so the most specific one wins. Types are named by their dotted path
(``numpy.ndarray``, ``pandas.DataFrame``), never imported: a value's own library is
necessarily loaded already, and no other is. For each type, a user's
:func:`register_materializer` beats a package's entry point (group
``mlzen.materializers``, name = dotted type path, value = ``"pkg.mod:Class"``), which
beats a built-in. A materializer may decline a value (:meth:`Materializer.accepts`),
e.g. JSON declines a dict holding an array; dispatch then goes on up the MRO, ending at
``object`` and the cloudpickle fallback, which warns once per type.

Example::

    @register_materializer("sklearn.base.BaseEstimator")
    class SkopsMaterializer(Materializer):
        def save(self, value, folder):
            skops.io.dump(value, folder / "model.skops")

        def load(self, folder, data_type):
            return skops.io.load(folder / "model.skops")
"""

from __future__ import annotations

import json
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ArtifactError, MaterializerError, MlzenError
from mlzen.importing import import_object

if TYPE_CHECKING:
    from mlzen.artifacts.visualization import Visualization
    from mlzen.comparison import ModelDiff

ENTRY_POINT_GROUP = "mlzen.materializers"
FALLBACK_TYPE = "builtins.object"

_BUILTIN = "mlzen.artifacts.builtin"
# Built-in materializers by the dotted path of the type they handle. Nothing is
# imported until a value of that type shows up. pandas >= 3 reports its public module.
BUILTIN_MATERIALIZERS: dict[str, str] = {
    "builtins.NoneType": f"{_BUILTIN}:JSONMaterializer",
    "builtins.bool": f"{_BUILTIN}:JSONMaterializer",
    "builtins.int": f"{_BUILTIN}:JSONMaterializer",
    "builtins.float": f"{_BUILTIN}:JSONMaterializer",
    "builtins.str": f"{_BUILTIN}:JSONMaterializer",
    "builtins.list": f"{_BUILTIN}:JSONMaterializer",
    "builtins.tuple": f"{_BUILTIN}:JSONMaterializer",
    "builtins.dict": f"{_BUILTIN}:JSONMaterializer",
    "builtins.bytes": f"{_BUILTIN}:BytesMaterializer",
    "builtins.bytearray": f"{_BUILTIN}:BytesMaterializer",
    "numpy.ndarray": f"{_BUILTIN}:NumpyMaterializer",
    "numpy.generic": f"{_BUILTIN}:NumpyMaterializer",
    "pandas.DataFrame": f"{_BUILTIN}:PandasMaterializer",
    "pandas.core.frame.DataFrame": f"{_BUILTIN}:PandasMaterializer",
    "pandas.Series": f"{_BUILTIN}:PandasMaterializer",
    "pandas.core.series.Series": f"{_BUILTIN}:PandasMaterializer",
    "pyarrow.lib.Table": f"{_BUILTIN}:ArrowMaterializer",
    FALLBACK_TYPE: f"{_BUILTIN}:PickleMaterializer",
}


class Materializer:
    """Saves values of some types as files in a folder, and loads them back.

    Subclass it, implement :meth:`save` and :meth:`load`, and register the subclass
    with :func:`register_materializer`. Write a format that other tools can read
    without mlzen. Instances are created per call and hold no state.

    Attributes:
        handled_types: Dotted paths of the types it handles, used by
            ``@register_materializer()`` when it is given no types.
    """

    handled_types: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def accepts(cls, value: Any) -> bool:
        """Whether :meth:`save` can store ``value`` so that :meth:`load` returns it unchanged.

        Declining sends dispatch on to the next class in the value's MRO.
        """
        return True

    def save(self, value: Any, folder: Path) -> None:
        """Write ``value`` as files into the empty folder ``folder``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} does not implement save(value, folder). Override it."
        )

    def load(self, folder: Path, data_type: str) -> Any:
        """Read back the value saved in ``folder``; ``data_type`` is its type's dotted path."""
        raise NotImplementedError(
            f"{type(self).__qualname__} does not implement load(folder, data_type). Override it."
        )

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        """JSON-serialisable facts about ``value`` (shape, rows, ...) to record with it."""
        return {}

    def save_visualizations(self, value: Any, folder: Path) -> list[Visualization]:
        """Write files that show ``value`` to a person into the empty ``folder``.

        Called after the artifact is saved; return one
        :class:`~mlzen.artifacts.visualization.Visualization` per file. A failure here
        is logged and never fails the step. The default declares none.
        """
        return []

    @classmethod
    def compare_saved(cls, old: Path, new: Path) -> ModelDiff | None:
        """How two artifacts this materializer saved differ, for ``mlzen.compare``.

        Given the two (hash-verified) artifact folders, frameworks whose values are
        models return a :class:`mlzen.comparison.ModelDiff` (hyper-parameters,
        parameter counts, weight changes); reading the files rather than loading the
        values lets a model be compared where its class cannot be imported. The
        default ``None`` leaves the comparison to the content hashes.
        """
        return None


M = TypeVar("M", bound=Materializer)


def type_path(cls: type) -> str:
    """The dotted path naming ``cls``, e.g. ``numpy.ndarray`` or ``builtins.int``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def materializer_name(cls: type[Materializer]) -> str:
    """The name a materializer is recorded under: ``"module:QualName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


# (dotted type path, where the materializer came from, it or its not yet imported name)
_Link = tuple[str, str, str | type[Materializer]]


class _Registry:
    """Where materializers are looked up; one per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.user: dict[str, type[Materializer]] = {}
        self.entry_points: dict[str, str] | None = None
        self.by_name: dict[str, type[Materializer]] = {}
        self.chains: weakref.WeakKeyDictionary[type, list[_Link]] = weakref.WeakKeyDictionary()
        self.warned: set[str] = set()

    def register(self, keys: list[str], cls: type[Materializer]) -> None:
        with self.lock:
            for key in keys:
                self.user[key] = cls
            self.by_name[materializer_name(cls)] = cls
            self.chains.clear()

    def candidate(self, key: str) -> tuple[str, str | type[Materializer]] | None:
        """The materializer for exactly the type ``key`` and where it came from."""
        if key in self.user:
            return "user", self.user[key]
        if self.entry_points is None:
            import importlib.metadata  # costs ~20 ms, so only on the first lookup

            with self.lock:
                if self.entry_points is None:
                    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
                    self.entry_points = {ep.name: ep.value for ep in found}
        if key in self.entry_points:
            return f"entry point '{key}' of group '{ENTRY_POINT_GROUP}'", self.entry_points[key]
        if key in BUILTIN_MATERIALIZERS:
            return "built-in", BUILTIN_MATERIALIZERS[key]
        return None

    def chain(self, cls: type) -> list[_Link]:
        """(type path, source, materializer) for each class of ``cls.__mro__`` that has one."""
        chain = self.chains.get(cls)
        if chain is None:
            chain = []
            for klass in cls.__mro__:
                key = type_path(klass)
                found = self.candidate(key)
                if found is not None:
                    chain.append((key, *found))
            self.chains[cls] = chain
        return chain


_registry = _Registry()


def register_materializer(*types: type | str) -> Callable[[type[M]], type[M]]:
    """Class decorator making a materializer the one for ``types`` (and their subclasses).

    Args:
        *types: Types or their dotted paths (``"torch.nn.Module"``), which avoids
            importing the library. Defaults to the class's ``handled_types``.

    Example::

        @register_materializer(MyModel)  # or "mypackage.models.MyModel"
        class MyModelMaterializer(Materializer): ...
    """
    for kind in types:
        if isinstance(kind, type) and issubclass(kind, Materializer):
            raise TypeError(
                f"register_materializer was given the materializer {kind.__qualname__} "
                "instead of the types it handles. Write @register_materializer(SomeType) "
                "or @register_materializer() with parentheses."
            )
        if not isinstance(kind, type | str):
            raise TypeError(
                f"register_materializer takes types or dotted type paths, not {kind!r}. "
                "Pass e.g. MyModel or 'mypackage.models.MyModel'."
            )

    def decorator(cls: type[M]) -> type[M]:
        if not (isinstance(cls, type) and issubclass(cls, Materializer)):
            raise TypeError(
                f"@register_materializer decorates {cls!r}, which is not a Materializer "
                "subclass. Derive it from mlzen.artifacts.materializer.Materializer."
            )
        keys = [k if isinstance(k, str) else type_path(k) for k in types]
        keys = keys or list(cls.handled_types)
        if not keys:
            raise TypeError(
                f"@register_materializer() on {cls.__qualname__} names no type to handle. "
                "Pass the types, e.g. @register_materializer(MyModel), or set handled_types."
            )
        _registry.register(keys, cls)
        return cls

    return decorator


def materializer_for(value: Any) -> type[Materializer]:
    """The materializer for ``value``: the most specific one that accepts it.

    Falls back to cloudpickle for types nothing else handles, warning once per type.
    """
    kind = type(value)
    declined: list[str] = []
    for key, source, target in _registry.chain(kind):
        # Imported only when reached, so a broken plugin for a base class cannot break
        # values that a more specific materializer handles.
        cls = target if isinstance(target, type) else _import(target, source)
        if not cls.accepts(value):
            declined.append(cls.__qualname__)
            continue
        if key == FALLBACK_TYPE and source == "built-in":
            _warn_fallback(type_path(kind), declined)
        return cls
    raise MaterializerError(
        f"No materializer accepts the {type_path(kind)} value "
        f"(declined by {', '.join(declined)}). Register one with "
        f"@register_materializer('{type_path(kind)}').",
        data_type=type_path(kind),
    )


def _warn_fallback(data_type: str, declined: list[str]) -> None:
    with _registry.lock:
        if data_type in _registry.warned:
            return
        _registry.warned.add(data_type)
    reason = (
        f"{' and '.join(declined)} cannot store this {data_type} value unchanged"
        if declined
        else f"mlzen has no materializer for {data_type}"
    )
    warnings.warn(
        f"{reason}, so it is pickled with cloudpickle: readable only from Python with the "
        "same classes importable. Register a materializer for it with "
        f"@register_materializer('{data_type}') on a Materializer subclass, or return a type "
        "mlzen stores natively (JSON builtins, bytes, numpy, pandas, pyarrow).",
        UserWarning,
        stacklevel=3,
    )


def materializer_by_name(name: str) -> type[Materializer]:
    """The materializer class recorded as ``name`` (see :func:`materializer_name`).

    Raises:
        MaterializerError: ``name`` cannot be imported or is not a materializer.
    """
    return _import(name, "recorded")


def _import(name: str, source: str) -> type[Materializer]:
    known = _registry.by_name.get(name)
    if known is not None:
        return known
    module_name, _, qualname = name.partition(":")
    if not module_name or not qualname:
        raise MaterializerError(
            f"'{name}' ({source}) is not a materializer name. Names look like "
            "'package.module:ClassName'; get one with materializer_name(cls).",
            materializer=name,
        )
    if "<locals>" in qualname:
        raise MaterializerError(
            f"Materializer '{name}' ({source}) was defined inside a function, so this "
            "process cannot import it. Define it at module level, or register it in this "
            "process before loading.",
            materializer=name,
        )
    try:
        found = import_object(name)
    except (ImportError, AttributeError) as exc:
        raise MaterializerError(
            f"Materializer '{name}' ({source}) cannot be imported: {exc}. Install the "
            "package that provides it in this environment.",
            materializer=name,
        ) from exc
    if not (isinstance(found, type) and issubclass(found, Materializer)):
        raise MaterializerError(
            f"'{name}' ({source}) is {found!r}, not a Materializer subclass. Point it at a "
            "class derived from mlzen.artifacts.materializer.Materializer.",
            materializer=name,
        )
    _registry.by_name[name] = found
    return found


@dataclass(frozen=True)
class SavedArtifact:
    """A value saved in an artifact store, with what is needed to load it back.

    Attributes:
        uri: Where the artifact folder lives.
        content_hash: BLAKE3 content hash of the folder.
        size: Total bytes of its files.
        materializer: :func:`materializer_name` of the materializer that wrote it.
        data_type: :func:`type_path` of the value's type.
        metadata: Facts extracted from the value by the materializer.
        files: Relative path → size of each stored file (the manifest a cache hit
            checks, see :meth:`~mlzen.artifacts.store.ArtifactStore.has_files`).
    """

    uri: str
    content_hash: str
    size: int
    materializer: str
    data_type: str
    metadata: dict[str, Any]
    files: dict[str, int] = field(default_factory=dict)


_PARALLEL_METADATA_BYTES = 8 * 1024 * 1024


def _extract_metadata_beside(instance: Materializer, value: Any) -> Callable[[], dict[str, Any]]:
    """Start extracting metadata; return a function that waits for the result.

    For large buffers (arrays, frames) the statistics run in a thread while the value is
    written: both release the GIL, so on two cores the metadata costs next to nothing.
    """
    if getattr(value, "nbytes", 0) < _PARALLEL_METADATA_BYTES:
        return lambda: instance.extract_metadata(value)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = instance.extract_metadata(value)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, name="mlzen-metadata", daemon=True)
    thread.start()

    def wait() -> dict[str, Any]:
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]  # type: ignore[no-any-return]

    return wait


def save_artifact(
    store: ArtifactStore,
    value: Any,
    *,
    name: str,
    materializer: type[Materializer] | None = None,
) -> SavedArtifact:
    """Save ``value`` into ``store`` as the artifact ``name``.

    Args:
        store: Where to publish the files.
        value: What to save.
        name: The artifact's name, used in error messages.
        materializer: Overrides the one :func:`materializer_for` picks.

    Raises:
        MaterializerError: The materializer failed; the cause is chained.
        ArtifactError: The store could not publish the files.
    """
    data_type = type_path(type(value))
    if materializer is None:
        try:
            materializer = materializer_for(value)
        except MaterializerError as exc:
            raise MaterializerError(
                f"Cannot save artifact '{name}': {exc.message}",
                **{**exc.fields, "artifact_name": name, "data_type": data_type},
            ) from exc
    chosen = materializer
    label = materializer_name(chosen)
    fields = {"artifact_name": name, "data_type": data_type, "materializer": label}
    with store.staging() as folder:
        action = "save"
        try:
            instance = chosen()
            metadata_future = _extract_metadata_beside(instance, value)
            instance.save(value, folder)
            action = "extract metadata from"
            metadata = metadata_future()
            json.dumps(metadata)
        except Exception as exc:
            raise MaterializerError(
                f"Could not {action} artifact '{name}' of type {data_type} with materializer "
                f"{label}: {type(exc).__name__}: {exc}. Fix the value or the materializer, "
                f"or register another one with @register_materializer('{data_type}').",
                **fields,
            ) from exc
        if not any(folder.iterdir()):
            raise MaterializerError(
                f"Materializer {label} wrote no files for artifact '{name}' of type "
                f"{data_type}. Make its save() write the value into the folder it is given.",
                **fields,
            )
        try:
            stored = store.publish(folder)
        except MlzenError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"Could not store artifact '{name}' of type {data_type} in the artifact "
                f"store {store.root}: {type(exc).__name__}: {exc}. Check that the store is "
                "reachable, writable and has free space.",
                **fields,
            ) from exc
    return SavedArtifact(
        uri=stored.uri,
        content_hash=stored.content_hash,
        size=stored.size,
        materializer=label,
        data_type=data_type,
        metadata=metadata,
        files=dict(stored.files),
    )


def load_artifact(
    store: ArtifactStore,
    *,
    uri: str,
    content_hash: str,
    materializer: str,
    data_type: str,
    name: str,
) -> Any:
    """Load the artifact ``name`` saved by :func:`save_artifact`, its hash verified.

    Raises:
        NotFoundError: Nothing is stored at ``uri``.
        ArtifactCorruptedError: The stored files do not match ``content_hash``.
        MaterializerError: The materializer is unavailable or failed; cause chained.
    """
    fields = {
        "artifact_name": name,
        "artifact_uri": uri,
        "data_type": data_type,
        "materializer": materializer,
    }
    try:
        folder = store.local_path(uri, content_hash)
    except MlzenError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"Could not read artifact '{name}' at {uri}: {type(exc).__name__}: {exc}. Check "
            f"that the artifact store {store.root} is reachable and readable.",
            **fields,
        ) from exc
    try:
        cls = materializer_by_name(materializer)
    except MaterializerError as exc:
        raise MaterializerError(f"Cannot load artifact '{name}': {exc.message}", **fields) from exc
    try:
        return cls().load(folder, data_type)
    except Exception as exc:
        raise MaterializerError(
            f"Could not load artifact '{name}' of type {data_type} from {uri} with "
            f"materializer {materializer}: {type(exc).__name__}: {exc}. Install the library "
            "that wrote it in a compatible version, or fix the materializer's load().",
            **fields,
        ) from exc
