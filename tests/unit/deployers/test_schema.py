"""Input schemas: rows in every accepted shape, and each kind of bad input named."""

from __future__ import annotations

import pytest

from mlzen.deployers import schema as s

CHURN = s.InputSchema(
    (
        s.Column("tenure", "integer", "int64"),
        s.Column("charges", "number", "float64", nullable=True),
        s.Column("plan", "string", "object"),
        s.Column("senior", "boolean", "bool"),
        s.Column("signed_up", "datetime", "datetime64[ns]"),
    ),
    named=True,
    source="test",
)
ROW = {"tenure": 3, "charges": 70.5, "plan": "basic", "senior": False, "signed_up": "2024-01-02"}
VALUES = [3, 70.5, "basic", False, "2024-01-02"]


def errors_of(schema: s.InputSchema, payload: object) -> list[dict]:
    with pytest.raises(s.InputError) as caught:
        schema.parse(payload)
    return caught.value.errors


def test_rows_as_records_or_lists_in_column_order() -> None:
    reordered = dict(reversed(list(ROW.items())))
    assert CHURN.parse({"rows": [ROW, reordered]}) == [VALUES, VALUES]
    assert CHURN.parse([ROW]) == [VALUES]
    assert CHURN.parse({"rows": [VALUES]}) == [VALUES]


def test_integer_columns_take_whole_floats_and_numbers_take_ints() -> None:
    assert CHURN.parse([{**ROW, "tenure": 3.0, "charges": 70}])[0][:2] == [3.0, 70]


def test_null_only_where_allowed() -> None:
    assert CHURN.parse([{**ROW, "charges": None}])[0][1] is None
    (error,) = errors_of(CHURN, [{**ROW, "plan": None}])
    assert error["loc"] == ["body", 0, "plan"]
    assert "Column 'plan' may not be null" in error["msg"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("tenure", "three", "Column 'tenure' expects an integer (trained as int64), got 'three'."),
        ("tenure", 2.5, "Column 'tenure' expects an integer (trained as int64), got 2.5."),
        ("tenure", True, "Column 'tenure' expects an integer (trained as int64), got True."),
        ("charges", "70", "Column 'charges' expects a number (trained as float64), got '70'."),
        ("charges", [1], "Column 'charges' expects a number (trained as float64), got a list."),
        ("tenure", 2**70, "Column 'tenure' is 1180591620717411303424, outside the range of int64."),
        ("charges", float("inf"), "Column 'charges' must be a finite number, got inf."),
        ("plan", 1, "Column 'plan' expects a string (trained as object), got 1."),
        ("senior", 0, "Column 'senior' expects true or false (trained as bool), got 0."),
        ("signed_up", "soon", "Column 'signed_up' expects an ISO 8601 date-time string"),
    ],
)
def test_wrong_types_name_the_column(column: str, value: object, message: str) -> None:
    (error,) = errors_of(CHURN, {"rows": [{**ROW, column: value}]})
    assert error["loc"] == ["body", "rows", 0, column]
    assert error["type"] == "type_error"
    assert error["msg"].startswith(message)


def test_missing_and_extra_columns_are_named_once_each() -> None:
    row = {k: v for k, v in ROW.items() if k != "plan"} | {"churned": 1}
    errors = errors_of(CHURN, [ROW, row])
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["body", 1, "plan"], "missing"),
        (["body", 1, "churned"], "extra_forbidden"),
    ]
    assert errors[0]["msg"] == "Column 'plan' is missing in row 1."
    assert "Its inputs: tenure, charges, plan, senior, signed_up." in errors[1]["msg"]


def test_list_rows_must_have_every_column() -> None:
    (error,) = errors_of(CHURN, [[1, 2.0]])
    assert "Row 0 has 2 values; the model takes 5 (tenure, charges," in error["msg"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"data": []}, "The body is an object with keys ['data']"),
        ("rows", "The body is a string"),
        ({"rows": {}}, "'rows' is an object, not a list."),
        ({"rows": []}, "There are no rows to predict."),
        ([1], "Row 0 is a number; send a record"),
    ],
)
def test_bodies_that_are_not_rows(payload: object, message: str) -> None:
    assert errors_of(CHURN, payload)[0]["msg"].startswith(message)


def test_too_many_rows_or_errors_are_cut_short() -> None:
    assert "send them in batches" in errors_of(CHURN, [ROW] * (s.MAX_ROWS + 1))[0]["msg"]
    assert len(errors_of(CHURN, [{**ROW, "tenure": "x"}] * 100)) == s.MAX_ERRORS


def test_positional_schema_takes_lists_only() -> None:
    schema = s.positional(2, "n_features_in_ = 2")
    assert schema.names == ["x0", "x1"]
    assert schema.parse([[1, 2.5]]) == [[1, 2.5]]
    (error,) = errors_of(schema, [{"x0": 1, "x1": 2}])
    assert "Send it as a list of 2 values in training order" in error["msg"]
    (error,) = errors_of(schema, [[1, "a"]])
    assert error["loc"] == ["body", 0, 1]
    assert "Column 'x1' expects a number" in error["msg"]


def test_unknown_schema_passes_rows_through() -> None:
    assert s.UNKNOWN.parse([[1, "a", None]]) == [[1, "a", None]]
    assert s.UNKNOWN.parse([{"a": 1}]) == [{"a": 1}]


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        ("int64", "integer"),
        ("Int32", "integer"),
        ("uint8", "integer"),
        ("float32", "number"),
        ("bool", "boolean"),
        ("boolean", "boolean"),
        ("object", "string"),
        ("string[python]", "string"),
        ("category", "string"),
        ("datetime64[ns, UTC]", "datetime"),
        ("timedelta64[ns]", "any"),
    ],
)
def test_kind_of_dtype(dtype: str, kind: str) -> None:
    assert s.kind_of(dtype) == kind


def test_declared_schemas() -> None:
    typed = s.from_declared({"a": "int64", "b": "object"}, "declared")
    assert typed is not None
    assert [(c.name, c.kind) for c in typed.columns] == [("a", "integer"), ("b", "string")]
    names = s.from_declared(["a", "b"], "declared")
    assert names is not None
    assert names.named
    assert [c.kind for c in names.columns] == ["any", "any"]
    assert s.from_declared("a,b", "declared") is None
    assert s.from_declared([], "declared") is None


def test_nullability_follows_training_null_counts() -> None:
    schema = s.from_names(["a", "b"], {"a": "float64", "b": "object"}, {"a": 0, "b": 2}, "t")
    assert [c.nullable for c in schema.columns] == [False, True]
    unknown_counts = s.from_names(["a", "b"], {"a": "float64", "b": "object"}, None, "t")
    assert [c.nullable for c in unknown_counts.columns] == [True, False]


def test_integer_ranges_follow_the_dtype() -> None:
    small = s.InputSchema((s.Column("n", "integer", "uint8"),), named=False, source="t")
    assert small.parse([[255]]) == [[255]]
    (error,) = errors_of(small, [[256]])
    assert error["msg"] == "Column 'n' is 256, outside the range of uint8."
    assert small.request_schema()["oneOf"][1]["items"]["prefixItems"][0] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 255,
    }


def test_schema_round_trips_and_describes_the_body() -> None:
    assert s.InputSchema.from_dict(CHURN.to_dict()) == CHURN
    body = CHURN.request_schema()
    row = body["oneOf"][1]["items"]
    assert row["required"] == CHURN.names
    assert row["properties"]["charges"] == {"type": ["number", "null"]}
    assert row["additionalProperties"] is False
