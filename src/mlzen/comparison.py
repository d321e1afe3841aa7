"""Compare two artifact versions, or two pipeline runs, as a structured diff.

``compare(a, b)`` dispatches on the data type recorded with each version: pandas
DataFrames (and Series) get schema, row count, per-column statistics and a drift score
per column; numpy arrays shape, dtype, statistics and the largest absolute difference;
dicts, lists and other JSON built-ins a deep diff of paths; models whose materializer
compares them (``Materializer.compare_saved``: scikit-learn, PyTorch) a
:class:`ModelDiff` of hyper-parameters, parameter counts and weights; anything else
whether the content hashes are equal. pandas and numpy are imported only when a type needs them.

``compare_runs`` adds what changed between two runs: parameters, metadata, the code of
each step (with a unified source diff) and steps added or removed, then compares every
output present in both runs.

Example:
    >>> from mlzen import Client, compare
    >>> old, new = Client().list_pipeline_runs(limit=2)[::-1]
    >>> diff = compare(old.steps["load"].outputs["raw"], new.steps["load"].outputs["raw"])
    >>> [(c.name, round(c.ks, 2)) for c in diff.dataframe.columns]
    [('age', 0.31)]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.errors import MlzenError, NotFoundError
from mlzen.explain import Change, _changes, key_diff

if TYPE_CHECKING:
    from mlzen.client import ArtifactVersion, Client, PipelineRun, StepRun

# What ``ArtifactDiff.kind`` says about how two versions were compared.
DATAFRAME = "dataframe"
ARRAY = "array"
JSON = "json"
MODEL = "model"
OPAQUE = "opaque"

PSI_BINS = 10
_DATAFRAME_TYPES = ("pandas.core.frame.DataFrame", "pandas.DataFrame")
_SERIES_TYPES = ("pandas.core.series.Series", "pandas.Series")
_ARRAY_TYPES = ("numpy.ndarray",)
_JSON_TYPES = tuple(
    f"builtins.{name}"
    for name in ("dict", "list", "tuple", "int", "float", "str", "bool", "NoneType")
)


@dataclass
class Stats:
    """Summary statistics of a column or array; ``std`` is the population std."""

    count: int
    nulls: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class ColumnDiff:
    """One column present in both frames: its statistics before and after, and its drift.

    ``kind`` is ``numeric`` (``psi`` and ``ks`` set), ``categorical`` (``tvd``, the total
    variation distance of category frequencies, set) or ``other`` (no drift score).
    """

    name: str
    kind: str
    old: Stats
    new: Stats
    psi: float | None = None
    ks: float | None = None
    tvd: float | None = None


@dataclass
class DataFrameDiff:
    rows_old: int
    rows_new: int
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    dtype_changes: list[Change] = field(default_factory=list)
    columns: list[ColumnDiff] = field(default_factory=list)


@dataclass
class ArrayDiff:
    shape_old: list[int]
    shape_new: list[int]
    dtype_old: str
    dtype_new: str
    old: Stats | None = None
    new: Stats | None = None
    max_abs_diff: float | None = None  # only when the shapes match


@dataclass
class DeepDiff:
    """Paths (``$``, ``$.key``, ``$[0]``) added, removed or changed between two values."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)


@dataclass
class WeightDiff:
    """A weight tensor (state-dict entry) whose values changed; ``max_abs_diff`` is
    ``None`` when it cannot be computed (non-numeric)."""

    name: str
    shape: list[int]
    max_abs_diff: float | None


@dataclass
class ModelDiff:
    """Two models compared by the materializer that saved them (``compare_saved``).

    ``hyperparameters`` are the constructor arguments or ``get_params()`` entries that
    differ (nested estimators as ``step__param``); ``shape_changes`` the weights added,
    removed or reshaped (old and new shape); ``weights`` the same-shape weights whose
    values changed, largest change first.
    """

    framework: str
    class_old: str
    class_new: str
    hyperparameters: list[Change] = field(default_factory=list)
    parameter_count_old: int | None = None
    parameter_count_new: int | None = None
    shape_changes: list[Change] = field(default_factory=list)
    max_abs_weight_diff: float | None = None
    weights: list[WeightDiff] = field(default_factory=list)


@dataclass
class ArtifactDiff:
    """The difference between artifact versions ``old`` and ``new`` (``name:version``).

    ``identical`` is true when the content hashes match; then nothing was loaded. One of
    ``dataframe``, ``array``, ``values`` and ``model`` is set when both were loaded, as
    ``kind`` says.
    ``step`` and ``output`` are set when the versions came from ``compare_runs``.
    """

    old: str
    new: str
    data_type_old: str
    data_type_new: str
    kind: str
    identical: bool
    metadata: list[Change] = field(default_factory=list)
    dataframe: DataFrameDiff | None = None
    array: ArrayDiff | None = None
    values: DeepDiff | None = None
    model: ModelDiff | None = None
    step: str | None = None
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


@dataclass
class RunRef:
    id: str
    name: str
    pipeline: str
    status: str


@dataclass
class StepDiff:
    """A step present in both runs: what changed in its parameters, metadata and code."""

    step: str
    parameters: list[Change] = field(default_factory=list)
    metadata: list[Change] = field(default_factory=list)
    code_changed: bool = False
    changed_functions: list[str] = field(default_factory=list)
    source_diff: str = ""
    outputs_added: list[str] = field(default_factory=list)
    outputs_removed: list[str] = field(default_factory=list)


@dataclass
class RunDiff:
    """What differs between runs ``old`` and ``new``; ``artifacts`` covers shared outputs."""

    old: RunRef
    new: RunRef
    parameters: list[Change] = field(default_factory=list)
    metadata: list[Change] = field(default_factory=list)
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    steps: list[StepDiff] = field(default_factory=list)
    artifacts: list[ArtifactDiff] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


def _stored_here(version: ArtifactVersion) -> bool:
    from mlzen.artifacts.identity import ForeignArtifactError

    try:
        version.folder_uri()
    except ForeignArtifactError:
        return False
    return True


def compare(
    a: ArtifactVersion,
    b: ArtifactVersion,
    *,
    loadable: Callable[[ArtifactVersion], bool] | None = None,
) -> ArtifactDiff:
    """Compare artifact version ``a`` (the old one) with ``b`` (the new one).

    ``loadable`` (the team server passes one) says which versions may be read: a pair
    with a version it refuses is compared by hash and metadata only (kind ``opaque``).
    So is a pair with a version stored in another artifact store than the client's
    stack's (``mlzen.artifacts.identity``): its files are never read.

    Example:
        >>> raw = Client().list_artifact_versions("raw", limit=2)
        >>> diff = compare(raw[1], raw[0])
        >>> diff.dataframe.rows_old, diff.dataframe.rows_new
        (100, 120)
    """
    refused = not (_stored_here(a) and _stored_here(b)) or (
        loadable is not None and not (loadable(a) and loadable(b))
    )
    kind = OPAQUE if refused else _kind(a.data_type, b.data_type)
    comparer = (
        _model_comparer(a.materializer, b.materializer) if kind == OPAQUE and not refused else None
    )
    if comparer is not None:
        kind = MODEL
    diff = ArtifactDiff(
        old=f"{a.name}:{a.version}",
        new=f"{b.name}:{b.version}",
        data_type_old=a.data_type,
        data_type_new=b.data_type,
        kind=kind,
        identical=a.content_hash == b.content_hash,
        metadata=_changes(a.metadata, b.metadata),
    )
    if diff.identical or kind == OPAQUE:
        return diff
    if comparer is not None:
        diff.model = comparer(a.local_path(), b.local_path())
        if diff.model is None:
            diff.kind = OPAQUE
        return diff
    old, new = a.load(), b.load()
    if kind == DATAFRAME:
        diff.dataframe = compare_frames(old, new)
    elif kind == ARRAY:
        diff.array = compare_arrays(old, new)
    else:
        diff.values = deep_diff(old, new)
    return diff


def compare_runs(
    client: Client,
    old: PipelineRun,
    new: PipelineRun,
    *,
    artifact: str | None = None,
    loadable: Callable[[ArtifactVersion], bool] | None = None,
) -> RunDiff:
    """Compare two runs; with ``artifact``, only outputs named so (or ``step.output``).
    ``loadable`` is passed on to :func:`compare`.

    Raises:
        NotFoundError: ``artifact`` names no output of either run.
    """
    diff = RunDiff(
        old=_run_ref(old),
        new=_run_ref(new),
        parameters=_changes(old.parameters, new.parameters),
        metadata=_changes(old.metadata, new.metadata),
    )
    old_steps, new_steps = old.steps, new.steps
    diff.steps_added = [s for s in new_steps if s not in old_steps]
    diff.steps_removed = [s for s in old_steps if s not in new_steps]
    pairs: list[tuple[str, str, ArtifactVersion, ArtifactVersion]] = []
    known: set[str] = set()
    for step_id, new_step in new_steps.items():
        old_step = old_steps.get(step_id)
        old_outputs = old_step.outputs if old_step is not None else {}
        new_outputs = new_step.outputs
        for source in (old_outputs, new_outputs):
            for name, version in source.items():
                known.update((name, version.name, f"{step_id}.{name}"))
        if old_step is None:
            continue
        step_diff = _step_diff(client, old_step, new_step)
        step_diff.outputs_added = [o for o in new_outputs if o not in old_outputs]
        step_diff.outputs_removed = [o for o in old_outputs if o not in new_outputs]
        diff.steps.append(step_diff)
        for name, new_version in new_outputs.items():
            old_version = old_outputs.get(name)
            if old_version is None:
                continue
            if artifact is None or artifact in (name, new_version.name, f"{step_id}.{name}"):
                pairs.append((step_id, name, old_version, new_version))
    for step_id in diff.steps_removed:
        for name, version in old_steps[step_id].outputs.items():
            known.update((name, version.name, f"{step_id}.{name}"))
    if artifact is not None and artifact not in known:
        names = ", ".join(sorted(known)) or "none"
        raise NotFoundError(
            f"Neither run '{old.name}' nor run '{new.name}' has an output named '{artifact}'. "
            f"Their outputs: {names}. Pass one of these to --artifact.",
            artifact_name=artifact,
        )
    for step_id, name, old_version, new_version in pairs:
        artifact_diff = compare(old_version, new_version, loadable=loadable)
        artifact_diff.step, artifact_diff.output = step_id, name
        diff.artifacts.append(artifact_diff)
    return diff


# -- DataFrames ---------------------------------------------------------------------------


def compare_frames(old: Any, new: Any) -> DataFrameDiff:
    """Schema, row counts, statistics and drift of each column two DataFrames share."""
    import pandas as pd

    if isinstance(old, pd.Series):
        old = old.to_frame()
    if isinstance(new, pd.Series):
        new = new.to_frame()
    old_columns = [str(c) for c in old.columns]
    new_columns = [str(c) for c in new.columns]
    old, new = old.set_axis(old_columns, axis=1), new.set_axis(new_columns, axis=1)
    diff = DataFrameDiff(
        rows_old=len(old),
        rows_new=len(new),
        added_columns=[c for c in new_columns if c not in old_columns],
        removed_columns=[c for c in old_columns if c not in new_columns],
    )
    for column in (c for c in new_columns if c in old_columns):
        a, b = old[column], new[column]
        if str(a.dtype) != str(b.dtype):
            diff.dtype_changes.append(Change(column, "changed", str(a.dtype), str(b.dtype)))
        diff.columns.append(_column_diff(column, a, b))
    return diff


def _column_diff(name: str, a: Any, b: Any) -> ColumnDiff:
    from pandas.api import types

    def numeric(series: Any) -> bool:
        return bool(types.is_numeric_dtype(series) and not types.is_bool_dtype(series))

    if numeric(a) and numeric(b):
        x = a.dropna().to_numpy(dtype="float64")
        y = b.dropna().to_numpy(dtype="float64")
        return ColumnDiff(
            name,
            "numeric",
            _stats(x, int(a.isna().sum())),
            _stats(y, int(b.isna().sum())),
            psi=psi(x, y),
            ks=ks_statistic(x, y),
        )
    old = Stats(count=len(a), nulls=int(a.isna().sum()))
    new = Stats(count=len(b), nulls=int(b.isna().sum()))
    categorical = (
        types.is_object_dtype(a)
        or types.is_string_dtype(a)
        or types.is_bool_dtype(a)
        or isinstance(a.dtype, types.CategoricalDtype)
    )
    if not categorical:
        return ColumnDiff(name, "other", old, new)
    return ColumnDiff(name, "categorical", old, new, tvd=total_variation(a, b))


def total_variation(a: Any, b: Any) -> float | None:
    """Half the summed absolute difference of category frequencies (0 same, 1 disjoint)."""
    p = a.dropna().astype(str).value_counts(normalize=True)
    q = b.dropna().astype(str).value_counts(normalize=True)
    if p.empty or q.empty:
        return None
    joined = p.to_frame("p").join(q.to_frame("q"), how="outer").fillna(0.0)
    return float((joined["p"] - joined["q"]).abs().sum() / 2)


# -- numeric drift --------------------------------------------------------------------------


def psi(old: Any, new: Any, bins: int = PSI_BINS) -> float | None:
    """Population stability index of ``new`` against ``old``, over quantile bins of ``old``.

    Empty bins count as a proportion of 1e-4 so the logarithm stays finite.
    """
    import numpy as np

    x, y = np.asarray(old, dtype="float64"), np.asarray(new, dtype="float64")
    if x.size == 0 or y.size == 0:
        return None
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1))[1:-1])
    p = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1) / x.size
    q = np.bincount(np.searchsorted(edges, y, side="right"), minlength=edges.size + 1) / y.size
    p, q = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(old: Any, new: Any) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    import numpy as np

    x = np.sort(np.asarray(old, dtype="float64"))
    y = np.sort(np.asarray(new, dtype="float64"))
    if x.size == 0 or y.size == 0:
        return None
    points = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, points, side="right") / x.size
    cdf_y = np.searchsorted(y, points, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))


def _stats(values: Any, nulls: int) -> Stats:
    import numpy as np

    stats = Stats(count=int(values.size) + nulls, nulls=nulls)
    if values.size:
        stats.mean, stats.std = float(np.mean(values)), float(np.std(values))
        stats.min, stats.max = float(np.min(values)), float(np.max(values))
    return stats


# -- arrays ----------------------------------------------------------------------------------


def compare_arrays(old: Any, new: Any) -> ArrayDiff:
    """Shape, dtype and statistics of two arrays, and the largest absolute difference."""
    import numpy as np

    a, b = np.asarray(old), np.asarray(new)
    diff = ArrayDiff(list(a.shape), list(b.shape), str(a.dtype), str(b.dtype))
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return diff
    x, y = a.astype("float64"), b.astype("float64")
    diff.old = _stats(x[~np.isnan(x)], int(np.isnan(x).sum()))
    diff.new = _stats(y[~np.isnan(y)], int(np.isnan(y).sum()))
    if a.shape == b.shape and a.size:
        gaps = np.abs(x - y)
        gaps[np.isnan(x) & np.isnan(y)] = 0.0
        diff.max_abs_diff = float(np.max(gaps))  # NaN when only one side is NaN
    return diff


# -- JSON built-ins --------------------------------------------------------------------------


def deep_diff(old: Any, new: Any, path: str = "$") -> DeepDiff:
    """Paths added, removed or changed between two nested dicts/lists/scalars."""
    diff = DeepDiff()
    _walk(old, new, path, diff)
    return diff


def _walk(old: Any, new: Any, path: str, diff: DeepDiff) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in new:
            child = f"{path}.{key}"
            if key in old:
                _walk(old[key], new[key], child, diff)
            else:
                diff.added.append(child)
        diff.removed.extend(f"{path}.{key}" for key in old if key not in new)
        return
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(old):
                diff.added.append(child)
            elif index >= len(new):
                diff.removed.append(child)
            else:
                _walk(old[index], new[index], child, diff)
        return
    if type(old) is not type(new) or old != new:
        diff.changed.append(Change(path, "changed", old, new))


# -- helpers ---------------------------------------------------------------------------------


def _kind(old_type: str, new_type: str) -> str:
    frames = _DATAFRAME_TYPES + _SERIES_TYPES
    if old_type in frames and new_type in frames:
        return DATAFRAME
    if old_type in _ARRAY_TYPES and new_type in _ARRAY_TYPES:
        return ARRAY
    if old_type in _JSON_TYPES and new_type in _JSON_TYPES:
        return JSON
    return OPAQUE


def _model_comparer(old: str, new: str) -> Callable[[Path, Path], ModelDiff | None] | None:
    """The ``compare_saved`` of the materializer that saved both versions, if it has one.

    Integrations (sklearn, torch, ...) provide it; the core knows none of them.
    """
    from mlzen.artifacts.materializer import Materializer, materializer_by_name

    if old != new:
        return None
    try:
        cls = materializer_by_name(old)
    except MlzenError:  # its package is not installed here: compare the hashes only
        return None
    if cls.compare_saved.__func__ is Materializer.compare_saved.__func__:  # type: ignore[attr-defined]
        return None
    return cls.compare_saved


def _step_diff(client: Any, old: StepRun, new: StepRun) -> StepDiff:
    diff = StepDiff(
        step=new.name,
        parameters=_changes(old.parameters, new.parameters),
        metadata=_changes(_step_metadata(client, old), _step_metadata(client, new)),
        code_changed=old.code_hash != new.code_hash,
    )
    if diff.code_changed or old.source != new.source:
        keys = key_diff(old, new, client)
        diff.changed_functions = [c.name for c in keys.functions]
        diff.source_diff = keys.source_diff
    return diff


def _step_metadata(client: Any, step_run: StepRun) -> dict[str, Any]:
    """The metadata a step run logged; for a cache hit, that of the run it reused (a hit
    logs nothing itself, and its outputs are the origin's)."""
    while step_run.cached_from_id and not step_run.metadata:
        try:
            step_run = client.get_run_step(step_run.cached_from_id)
        except NotFoundError:  # the origin's run was deleted
            break
    return step_run.metadata


def _run_ref(run: PipelineRun) -> RunRef:
    return RunRef(run.id, run.name, run.pipeline_name, run.status)


def _jsonable(value: Any) -> Any:
    """Plain JSON: NaN and infinities become ``None``, unknown objects their ``repr``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return repr(value)
