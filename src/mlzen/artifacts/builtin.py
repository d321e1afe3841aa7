"""The built-in materializers, each writing a format other tools read without mlzen.

=====================================  ==================  ===============================
type                                   file                read back with
=====================================  ==================  ===============================
None, bool, int, float, str, list,     ``data.json``       any JSON reader
tuple, dict (JSON values only)
bytes, bytearray                       ``data.bin``        anything
numpy arrays and scalars               ``data.npy``        ``numpy.load``
pandas DataFrame and Series            ``data.parquet``    pandas, pyarrow, polars, DuckDB
pyarrow Table                          ``data.parquet``    pandas, pyarrow, polars, DuckDB
anything else                          ``data.pkl``        ``pickle.load``, same classes
=====================================  ==================  ===============================

Libraries are imported inside the methods: a materializer only runs on a value of its
type, whose library is then loaded already.
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Final

from mlzen.artifacts.materializer import Materializer
from mlzen.artifacts.visualization import Visualization

# Loaded arrays map the file copy-on-write: no read up front, pages shared with the OS
# cache, and a step may still modify its input in memory without touching the artifact.
NUMPY_MMAP_MODE: Final = "c"
# Per-column metadata stops here so that a very wide frame keeps a small record.
MAX_METADATA_COLUMNS = 256
MAX_METADATA_STRING = 256
# The HTML preview of a frame shows this much; the histogram grid this many columns.
PREVIEW_ROWS = 50
PREVIEW_COLUMNS = 40
PREVIEW_CELL_CHARS = 200
HISTOGRAM_COLUMNS = 12

_JSON_SCALARS = (type(None), bool, int, float, str)
_MAX_JSON_DEPTH = 256
# Python refuses to print ints with more than 4300 digits (about 14_000 bits).
_MAX_JSON_INT_BITS = 14_000


def is_plain_json(value: Any) -> bool:
    """Whether ``json.loads(json.dumps(value)) == value``, types included.

    Only exact builtins qualify (no subclasses such as ``IntEnum`` or ``OrderedDict``),
    dict keys must be ``str``, tuples are allowed only at the top level (the recorded
    data type turns the list back into a tuple) and nothing may refer to itself.
    """
    if type(value) is tuple:
        value = list(value)
    return _is_plain_json(value, set(), 0)


def _is_plain_json(value: Any, on_path: set[int], depth: int) -> bool:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return kind is not int or value.bit_length() <= _MAX_JSON_INT_BITS
    if kind not in (list, dict) or depth > _MAX_JSON_DEPTH or id(value) in on_path:
        return False
    on_path.add(id(value))
    try:
        if kind is dict:
            return all(
                type(key) is str and _is_plain_json(item, on_path, depth + 1)
                for key, item in value.items()
            )
        return all(_is_plain_json(item, on_path, depth + 1) for item in value)
    finally:
        on_path.discard(id(value))


def _json_number(value: Any) -> int | float | None:
    """A JSON-safe Python number, or None for NaN, infinities and missing values."""
    try:
        if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
            return int(value)
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class JSONMaterializer(Materializer):
    """Builtin scalars and containers as ``data.json``."""

    handled_types = (
        "builtins.NoneType",
        "builtins.bool",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.list",
        "builtins.tuple",
        "builtins.dict",
    )

    @classmethod
    def accepts(cls, value: Any) -> bool:
        return is_plain_json(value)

    def save(self, value: Any, folder: Path) -> None:
        (folder / "data.json").write_text(json.dumps(value), encoding="utf-8")

    def load(self, folder: Path, data_type: str) -> Any:
        value = json.loads((folder / "data.json").read_text(encoding="utf-8"))
        return tuple(value) if data_type == "builtins.tuple" else value

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        if isinstance(value, list | tuple | dict):
            return {"length": len(value)}
        if isinstance(value, str):
            if len(value) <= MAX_METADATA_STRING:
                return {"length": len(value), "value": value}
            return {"length": len(value)}
        if isinstance(value, bool) or value is None:
            return {"value": value}
        number = _json_number(value)
        if number is None or abs(number) >= 2**63:
            return {}
        return {"value": value}


class BytesMaterializer(Materializer):
    """``bytes`` and ``bytearray`` as ``data.bin``."""

    handled_types = ("builtins.bytes", "builtins.bytearray")

    @classmethod
    def accepts(cls, value: Any) -> bool:
        return type(value) in (bytes, bytearray)

    def save(self, value: Any, folder: Path) -> None:
        (folder / "data.bin").write_bytes(value)

    def load(self, folder: Path, data_type: str) -> Any:
        data = (folder / "data.bin").read_bytes()
        return bytearray(data) if data_type == "builtins.bytearray" else data

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        return {"size": len(value)}


class NumpyMaterializer(Materializer):
    """numpy arrays and scalars as ``data.npy``; arrays load memory-mapped.

    Object arrays are declined (they would need pickle inside the ``.npy``), and so
    are ndarray subclasses such as masked arrays, whose extra state ``.npy`` drops.
    """

    handled_types = ("numpy.ndarray", "numpy.generic")

    @classmethod
    def accepts(cls, value: Any) -> bool:
        import numpy as np

        if not isinstance(value, np.generic) and type(value) not in (np.ndarray, np.memmap):
            return False
        return not value.dtype.hasobject

    def save(self, value: Any, folder: Path) -> None:
        import numpy as np

        np.save(folder / "data.npy", value, allow_pickle=False)

    def load(self, folder: Path, data_type: str) -> Any:
        import numpy as np

        array = np.load(folder / "data.npy", mmap_mode=NUMPY_MMAP_MODE, allow_pickle=False)
        if array.ndim == 0 and data_type not in ("numpy.ndarray", "numpy.memmap"):
            return array[()]
        return array

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype), **array_stats(value)}


def array_stats(array: Any) -> dict[str, Any]:
    """min, max and mean of a numeric, non-empty array, ignoring NaN; else nothing.

    Each is one vectorised pass without a copy: ``fmin``/``fmax`` skip NaN, and only an
    array whose plain mean is NaN pays for a NaN mask.
    """
    import numpy as np

    if array.size == 0 or array.dtype.kind not in "iuf":
        return {}
    low = np.fmin.reduce(array, axis=None)
    high = np.fmax.reduce(array, axis=None)
    mean = np.mean(array, dtype=np.float64)
    if np.isnan(mean):
        present = ~np.isnan(array)
        mean = np.mean(array, dtype=np.float64, where=present) if present.any() else mean
    return {"min": _json_number(low), "max": _json_number(high), "mean": _json_number(mean)}


class PandasMaterializer(Materializer):
    """pandas DataFrame and Series as ``data.parquet`` (via pyarrow), index included.

    A Series is stored as a one-column frame; its name goes in the schema metadata.
    """

    handled_types = (
        "pandas.DataFrame",
        "pandas.core.frame.DataFrame",
        "pandas.Series",
        "pandas.core.series.Series",
    )

    @classmethod
    def accepts(cls, value: Any) -> bool:
        import pandas as pd

        return type(value) in (pd.DataFrame, pd.Series)

    def save(self, value: Any, folder: Path) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(value, pd.Series):
            table = pa.Table.from_pandas(value.to_frame())
            name = value.name
            # pyarrow restores a column label as a numpy scalar; keep the exact one.
            info = {"name": name} if type(name) in _JSON_SCALARS else {}
            metadata = {**(table.schema.metadata or {}), b"mlzen.series": json.dumps(info)}
            table = table.replace_schema_metadata(metadata)
        else:
            table = pa.Table.from_pandas(value)
        pq.write_table(table, folder / "data.parquet")

    def load(self, folder: Path, data_type: str) -> Any:
        import pyarrow.parquet as pq

        table = pq.read_table(folder / "data.parquet", memory_map=True)
        frame = table.to_pandas()
        series_info = (table.schema.metadata or {}).get(b"mlzen.series")
        if series_info is None:
            return frame
        series = frame.iloc[:, 0]
        info = json.loads(series_info)
        if "name" in info:
            series.name = info["name"]
        return series

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        frame = value.to_frame() if value.ndim == 1 else value
        return frame_metadata(frame)

    def save_visualizations(self, value: Any, folder: Path) -> list[Visualization]:
        """``preview``: an HTML table of the first rows; ``histograms``: one PNG grid
        of the numeric columns' distributions (when matplotlib is installed)."""
        frame = value.to_frame() if value.ndim == 1 else value
        (folder / "preview.html").write_text(frame_preview_html(frame), encoding="utf-8")
        found = [Visualization("preview", "html", "preview.html")]
        if importlib.util.find_spec("matplotlib") is not None and save_histograms(
            frame, folder / "histograms.png"
        ):
            found.append(Visualization("histograms", "png", "histograms.png"))
        return found


def frame_preview_html(frame: Any) -> str:
    """A standalone HTML page: the first ``PREVIEW_ROWS`` rows and ``PREVIEW_COLUMNS``
    columns of ``frame``, every value escaped."""
    shown = frame.iloc[:PREVIEW_ROWS, :PREVIEW_COLUMNS]
    rows, columns = frame.shape
    caption = f"{rows} rows, {columns} columns"
    if shown.shape != frame.shape:
        caption += f" (first {shown.shape[0]} rows, {shown.shape[1]} columns shown)"
    shown = shown.map(_short_cell)
    table = shown.to_html(escape=True, border=0, classes="mlzen-preview")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>preview</title>\n'
        "<style>table.mlzen-preview{border-collapse:collapse;font:13px sans-serif}"
        ".mlzen-preview th,.mlzen-preview td{border:1px solid #ddd;padding:2px 6px}</style>"
        f"</head><body>\n<p>{html.escape(caption)}</p>\n{table}\n</body></html>\n"
    )


def _short_cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) > PREVIEW_CELL_CHARS:
        return value[: PREVIEW_CELL_CHARS - 1] + "…"
    return value


def save_histograms(frame: Any, path: Path) -> bool:
    """Draw a grid of histograms of the numeric columns (the first ``HISTOGRAM_COLUMNS``)
    into the PNG ``path``; false when no column has a finite value to draw."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from pandas.api import types

    columns: list[tuple[str, Any]] = []
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if not types.is_numeric_dtype(column) or types.is_bool_dtype(column):
            continue
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        values = values[np.isfinite(values)]
        if values.size:
            columns.append((str(frame.columns[position]), values))
        if len(columns) == HISTOGRAM_COLUMNS:
            break
    if not columns:
        return False
    across = min(3, len(columns))
    down = -(-len(columns) // across)
    # A plain subplot grid drawn as one filled outline per column, without y ticks:
    # a layout engine and a patch per bar would cost several times the drawing time.
    figure = Figure(figsize=(3.2 * across, 2.0 * down), dpi=72)
    figure.subplots_adjust(left=0.03, right=0.97, bottom=0.1, top=0.9, wspace=0.12, hspace=0.6)
    for index, (name, values) in enumerate(columns):
        axes = figure.add_subplot(down, across, index + 1)
        # Few distinct values (flags, small counts) get one bar each; judged on a sample.
        bins = min(30, max(1, np.unique(values[:1000]).size))
        counts, edges = np.histogram(values, bins=bins)
        axes.stairs(counts, edges, fill=True, color="#4c72b0")
        axes.set_title(name[:40], fontsize=9)
        axes.set_yticks([])
        axes.xaxis.set_major_locator(MaxNLocator(4))
        axes.tick_params(labelsize=7)
    figure.savefig(path, format="png")
    return True


def frame_metadata(frame: Any) -> dict[str, Any]:
    """rows, columns, dtypes, null_counts and numeric stats of a DataFrame.

    Per-column facts cover the first ``MAX_METADATA_COLUMNS`` columns.
    """
    shown = frame.iloc[:, :MAX_METADATA_COLUMNS]
    names = [str(column) for column in shown.columns]
    nulls = shown.isna().sum().tolist()
    dtypes: dict[str, str] = {}
    stats: dict[str, dict[str, Any]] = {}
    for position, name in enumerate(names):
        column = shown.iloc[:, position]
        dtypes[name] = str(column.dtype)
        if column.dtype.kind in "iuf" and len(column):
            stats[name] = {
                "min": _json_number(column.min()),
                "max": _json_number(column.max()),
                "mean": _json_number(column.mean()),
            }
    metadata: dict[str, Any] = {
        "rows": len(frame),
        "columns": names,
        "dtypes": dtypes,
        "null_counts": dict(zip(names, (int(n) for n in nulls), strict=True)),
        "stats": stats,
    }
    if frame.shape[1] > MAX_METADATA_COLUMNS:
        metadata["column_count"] = frame.shape[1]
    return metadata


class ArrowMaterializer(Materializer):
    """pyarrow Tables as ``data.parquet``; loaded memory-mapped."""

    handled_types = ("pyarrow.lib.Table",)

    @classmethod
    def accepts(cls, value: Any) -> bool:
        import pyarrow as pa

        return type(value) is pa.Table

    def save(self, value: Any, folder: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(value, folder / "data.parquet")

    def load(self, folder: Path, data_type: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(folder / "data.parquet", memory_map=True)

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        return {
            "rows": value.num_rows,
            "columns": value.column_names[:MAX_METADATA_COLUMNS],
            "schema": value.schema.to_string(show_schema_metadata=False)[:10_000],
        }


class PickleMaterializer(Materializer):
    """Anything, as ``data.pkl`` written by cloudpickle: the last resort.

    Only Python reads it back, and only where the value's classes import. Register a
    materializer for the type to get a lasting format.
    """

    handled_types = ("builtins.object",)

    def save(self, value: Any, folder: Path) -> None:
        import cloudpickle

        with open(folder / "data.pkl", "wb") as file:
            cloudpickle.dump(value, file)

    def load(self, folder: Path, data_type: str) -> Any:
        import pickle

        with open(folder / "data.pkl", "rb") as file:
            # The artifact's hash was verified against the one recorded at save time.
            return pickle.load(file)  # noqa: S301
