"""The input a served model takes, where that knowledge comes from, and row validation.

The columns come from the first of these that exists:

1. ``input_schema`` (``{column: dtype}``) or ``columns`` (a list) in the model
   version's or the model artifact's metadata;
2. the estimator's ``feature_names_in_`` (a scikit-learn model fit on a DataFrame), with
   each column's dtype taken from the DataFrame the training step read (lineage: the
   model artifact's producer step and its input artifacts' recorded ``dtypes``);
3. ``n_features_in_`` (or a torch model's first layer's ``in_features``): that many
   unnamed numeric columns, ``x0`` ... ``xN-1``, sent as lists in training order.

Without any of these, rows go to the model unchecked, and ``/info`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: JSON types a column accepts, by its kind.
KINDS = ("integer", "number", "boolean", "string", "datetime", "any")
MAX_ROWS = 10_000
MAX_ERRORS = 20
#: An error shows at most this many characters of a value or name from the request,
#: so a huge invalid value is never sent back.
SHOWN_CHARS = 60
#: ... and at most this many of a message the model raised.
MESSAGE_CHARS = 500
# A column absent from a record: reported as missing, not also as a wrong value.
_MISSING = object()


@dataclass(frozen=True)
class Column:
    """One input column: its name, kind (see ``KINDS``), training dtype and nullability."""

    name: str
    kind: str = "any"
    dtype: str | None = None
    nullable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
        }


class InputError(Exception):
    """Rows that do not fit the schema; ``errors`` in FastAPI's 422 shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(error["msg"] for error in errors))
        self.errors = errors


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` as an error shows it: its start, and how long it was when it is longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _error(loc: Sequence[Any], msg: str, kind: str) -> dict[str, Any]:
    where = [shown(part) if isinstance(part, str) else part for part in loc]
    return {"loc": ["body", *where], "msg": msg, "type": kind}


@dataclass(frozen=True)
class InputSchema:
    """The columns a model takes.

    Attributes:
        columns: In the order the model was trained on (empty: unknown).
        named: Whether the names are the model's own (rows may be records); unnamed
            columns (``x0``, ...) take rows as lists only.
        source: Where the columns came from, said in ``/info``.
    """

    columns: tuple[Column, ...]
    named: bool
    source: str

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [column.to_dict() for column in self.columns],
            "named": self.named,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSchema:
        return cls(
            columns=tuple(Column(**column) for column in data["columns"]),
            named=data["named"],
            source=data["source"],
        )

    def parse(self, payload: Any) -> list[Any]:
        """The rows of a request body, each as values in column order (records stay
        records when the columns are unknown).

        Accepts ``{"rows": [...]}`` or a bare list; each row a record
        (``{"column": value}``) or, when the columns are known, a list of values in
        their order.

        Raises:
            InputError: Every problem found (up to ``MAX_ERRORS``), each naming the row
                and column.
        """
        rows, where = _rows_of(payload)
        errors: list[dict[str, Any]] = []
        parsed = []
        for index, row in enumerate(rows):
            parsed.append(self._row(row, [*where, index], errors))
            if len(errors) >= MAX_ERRORS:
                break
        if errors:
            raise InputError(errors[:MAX_ERRORS])
        return parsed

    def _row(self, row: Any, loc: list[Any], errors: list[dict[str, Any]]) -> Any:
        n = len(self.columns)
        if isinstance(row, list):
            if n and len(row) != n:
                errors.append(
                    _error(
                        loc,
                        f"Row {loc[-1]} has {len(row)} values; the model takes {n} "
                        f"({', '.join(self.names)}).",
                        "wrong_length",
                    )
                )
                return row
            values = row
        elif isinstance(row, dict):
            if not self.columns:
                return row  # nothing to check against: the model gets the record
            if not self.named:
                errors.append(
                    _error(
                        loc,
                        f"Row {loc[-1]} is a record, but the model's column names are not "
                        f"known ({self.source}). Send it as a list of {n or 'its'} values "
                        "in training order.",
                        "list_type",
                    )
                )
                return []
            values = self._record(row, loc, errors)
        else:
            errors.append(
                _error(
                    loc,
                    f"Row {loc[-1]} is {_json_type(row)}; send a record "
                    '({"column": value, ...}) or a list of values.',
                    "row_type",
                )
            )
            return []
        if n:
            for column, value, at in zip(self.columns, values, range(n), strict=False):
                message = None if value is _MISSING else _check(column, value)
                if message:
                    errors.append(
                        _error([*loc, column.name if self.named else at], message, "type_error")
                    )
        return list(values)

    def _record(self, row: dict[str, Any], loc: list[Any], errors: list[dict[str, Any]]) -> list:
        names = self.names
        for name in names:
            if name not in row:
                errors.append(
                    _error(
                        [*loc, name],
                        f"Column '{name}' is missing in row {loc[-1]}.",
                        "missing",
                    )
                )
        known = set(names)
        for name in row:
            if name not in known:
                errors.append(
                    _error(
                        [*loc, name],
                        f"Column '{shown(name)}' in row {loc[-1]} is not an input of this "
                        f"model. Its inputs: {', '.join(names)}.",
                        "extra_forbidden",
                    )
                )
        return [row.get(name, _MISSING) for name in names]

    def request_schema(self) -> dict[str, Any]:
        """The JSON schema of a ``/predict`` body, for the OpenAPI page."""
        if self.named and self.columns:
            row: dict[str, Any] = {
                "type": "object",
                "properties": {c.name: _json_schema(c) for c in self.columns},
                "required": self.names,
                "additionalProperties": False,
            }
        elif self.columns:
            row = {
                "type": "array",
                "prefixItems": [_json_schema(c) for c in self.columns],
                "minItems": len(self.columns),
                "maxItems": len(self.columns),
            }
        else:
            row = {}
        rows = {"type": "array", "items": row, "minItems": 1, "maxItems": MAX_ROWS}
        wrapped = {
            "type": "object",
            "properties": {"rows": rows},
            "required": ["rows"],
            "additionalProperties": False,
        }
        return {"oneOf": [wrapped, rows]}


def _rows_of(payload: Any) -> tuple[list[Any], list[Any]]:
    if isinstance(payload, dict) and set(payload) == {"rows"}:
        rows, where = payload["rows"], ["rows"]
    elif isinstance(payload, list):
        rows, where = payload, []
    else:
        got = None
        if isinstance(payload, dict):
            keys = [shown(str(key)) for key in sorted(payload)[:5]]
            more = f" and {len(payload) - 5} more" if len(payload) > 5 else ""
            got = f"an object with keys {keys}{more}"
        raise InputError(
            [
                _error(
                    [],
                    f"The body is {got or _json_type(payload)}; send "
                    '{"rows": [{"column": value, ...}, ...]} or a list of such rows.',
                    "body_type",
                )
            ]
        )
    if not isinstance(rows, list):
        raise InputError([_error(where, f"'rows' is {_json_type(rows)}, not a list.", "list_type")])
    if not rows:
        raise InputError([_error(where, "There are no rows to predict.", "too_short")])
    if len(rows) > MAX_ROWS:
        raise InputError(
            [
                _error(
                    where,
                    f"{len(rows)} rows is more than {MAX_ROWS} in one request; send them in "
                    "batches.",
                    "too_long",
                )
            ]
        )
    return rows, where


def _check(column: Column, value: Any) -> str | None:
    """Why ``value`` does not fit ``column``, or ``None`` if it does."""
    name = f"Column '{column.name}'"
    if value is None:
        if column.nullable or column.kind == "any":
            return None
        return f"{name} may not be null (it had no missing values in training)."
    kind = column.kind
    if kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        want = "an integer"
        low, high = _int_range(column.dtype)
        if ok and not low <= value <= high:
            number = shown(str(value) if isinstance(value, int) else f"{value:.0f}")
            return f"{name} is {number}, outside the range of {column.dtype or 'int64'}."
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        want = "a number"
        if ok and not math.isfinite(value):
            return f"{name} must be a finite number, got {value}."
    elif kind == "boolean":
        ok, want = isinstance(value, bool), "true or false"
    elif kind == "string":
        ok, want = isinstance(value, str), "a string"
    elif kind == "datetime":
        want = "an ISO 8601 date-time string"
        ok = isinstance(value, str) and _is_datetime(value)
    else:
        ok = isinstance(value, str | int | float | bool)
        want = "a string, number or boolean"
    if ok:
        return None
    got = shown(repr(value)) if isinstance(value, str | int | float) else _json_type(value)
    dtype = f" (trained as {column.dtype})" if column.dtype else ""
    return f"{name} expects {want}{dtype}, got {got}."


def _int_range(dtype: str | None) -> tuple[int, int]:
    """The values an integer dtype holds (int64's when it is not known)."""
    text = (dtype or "int64").lower()
    unsigned = text.startswith("uint")
    digits = "".join(ch for ch in text if ch.isdigit())
    bits = int(digits) if digits in ("8", "16", "32", "64") else 64
    if unsigned:
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _json_schema(column: Column) -> dict[str, Any]:
    types = {
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "string": {"type": "string"},
        "datetime": {"type": "string", "format": "date-time"},
    }
    schema: dict[str, Any] = dict(types.get(column.kind, {}))
    if column.kind == "integer":
        schema["minimum"], schema["maximum"] = _int_range(column.dtype)
    if column.nullable and schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def kind_of(dtype: str) -> str:
    """The column kind for a pandas/numpy dtype name."""
    text = dtype.lower()
    if text.startswith(("int", "uint")):
        return "integer"
    if text.startswith("float"):
        return "number"
    if text in ("bool", "boolean"):
        return "boolean"
    if text in ("object", "string", "str", "category") or text.startswith("string"):
        return "string"
    if text.startswith("datetime"):
        return "datetime"
    return "any"


def from_declared(declared: Any, source: str) -> InputSchema | None:
    """A schema from a declared ``input_schema`` mapping or ``columns`` list."""
    if isinstance(declared, Mapping) and declared:
        columns = tuple(
            Column(str(name), kind_of(str(dtype)), str(dtype)) for name, dtype in declared.items()
        )
        return InputSchema(columns, named=True, source=source)
    if isinstance(declared, list | tuple) and declared:
        return InputSchema(tuple(Column(str(n)) for n in declared), named=True, source=source)
    return None


def from_names(
    names: Iterable[str],
    dtypes: Mapping[str, str],
    nulls: Mapping[str, int] | None,
    source: str,
) -> InputSchema:
    """Named columns, typed by ``dtypes`` where known (``any`` elsewhere).

    A column takes null where training had missing values in it; when the null counts
    are not known, numeric columns take null (as NaN).
    """
    columns = []
    for name in names:
        dtype = dtypes.get(name)
        kind = kind_of(dtype) if dtype else "any"
        nullable = bool(nulls.get(name)) if nulls is not None else kind == "number"
        columns.append(Column(name, kind, dtype, nullable))
    return InputSchema(tuple(columns), named=True, source=source)


def positional(count: int, source: str) -> InputSchema:
    """``count`` unnamed numeric columns ``x0`` ... taken as lists."""
    columns = tuple(Column(f"x{i}", "number") for i in range(count))
    return InputSchema(columns, named=False, source=source)


UNKNOWN = InputSchema(
    (), named=False, source="unknown: the model declares no input columns, rows are not checked"
)
