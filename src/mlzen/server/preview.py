"""A bounded preview of an artifact value: the head of a table, or the start of its text.

Types are recognised without importing their libraries (pandas, polars, numpy are only
touched when the value already is one of theirs).
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

from mlzen.server.schemas import Preview

MAX_TEXT = 20_000
MAX_COLUMNS = 100
MAX_CELL = 500


def _cell(value: Any) -> Any:
    """A JSON-safe cell: numbers and strings stay, NaN becomes null, the rest its str."""
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, str) else value[:MAX_CELL]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _cell(item())
        except (TypeError, ValueError):
            pass
    return str(value)[:MAX_CELL]


def preview(value: Any, data_type: str, rows: int) -> Preview:
    """The first ``rows`` rows of a frame or array, or the start of a value's text."""
    module = type(value).__module__.split(".")[0]
    name = type(value).__name__
    if module == "pandas" and name == "DataFrame":
        frame = value.iloc[:rows, :MAX_COLUMNS]
        return Preview(
            kind="table",
            data_type=data_type,
            columns=[str(c) for c in frame.columns],
            rows=[[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)],
            total_rows=len(value),
            truncated=len(value) > rows or value.shape[1] > MAX_COLUMNS,
        )
    if module == "polars" and name == "DataFrame":
        frame = value.head(rows).select(value.columns[:MAX_COLUMNS])
        return Preview(
            kind="table",
            data_type=data_type,
            columns=list(frame.columns),
            rows=[[_cell(v) for v in row] for row in frame.iter_rows()],
            total_rows=value.height,
            truncated=value.height > rows or value.width > MAX_COLUMNS,
        )
    if module == "numpy" and name == "ndarray" and value.ndim in (1, 2):
        head = value[:rows]
        table = head.reshape(-1, 1) if value.ndim == 1 else head[:, :MAX_COLUMNS]
        return Preview(
            kind="table",
            data_type=data_type,
            columns=[str(i) for i in range(table.shape[1])],
            rows=[[_cell(v) for v in row] for row in table.tolist()],
            total_rows=int(value.shape[0]),
            truncated=value.shape[0] > rows or (value.ndim == 2 and value.shape[1] > MAX_COLUMNS),
        )
    text = _text(value)
    return Preview(
        kind="text",
        data_type=data_type,
        text=text[:MAX_TEXT],
        truncated=len(text) > MAX_TEXT,
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple | int | float | bool) or value is None:
        try:
            return json.dumps(value, indent=2, default=repr)[: MAX_TEXT + 1]
        except (TypeError, ValueError):
            pass
    limited = reprlib.Repr()
    limited.maxstring = MAX_TEXT
    limited.maxother = MAX_TEXT
    limited.maxlist = limited.maxdict = limited.maxtuple = 200
    return limited.repr(value)
