"""polars DataFrames as Parquet written by polars."""

from __future__ import annotations

import pytest

pl = pytest.importorskip("polars")

from polars.testing import assert_frame_equal  # noqa: E402

from mlzen.artifacts.materializer import materializer_for  # noqa: E402
from mlzen.integrations.polars import DATA_FILE, PolarsMaterializer  # noqa: E402
from tests.unit.artifacts.helpers import roundtrip  # noqa: E402


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3, None],
            "score": [0.5, None, 1.5, 2.0],
            "label": ["a", "b", None, "d"],
            "when": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 4), eager=True),
        }
    )


def test_dataframe_roundtrips_through_parquet(store) -> None:
    value = frame()
    saved, loaded = roundtrip(store, value)
    assert saved.materializer == "mlzen.integrations.polars:PolarsMaterializer"
    assert type(loaded) is pl.DataFrame
    assert_frame_equal(loaded, value)
    folder = store.local_path(saved.uri, saved.content_hash)
    assert pl.read_parquet(folder / DATA_FILE).equals(value)


def test_metadata_records_rows_columns_dtypes_and_nulls(store) -> None:
    saved, _ = roundtrip(store, frame())
    assert saved.metadata == {
        "rows": 4,
        "columns": ["id", "score", "label", "when"],
        "dtypes": {"id": "Int64", "score": "Float64", "label": "String", "when": "Date"},
        "null_counts": {"id": 1, "score": 1, "label": 1, "when": 0},
    }


def test_empty_frame_roundtrips(store) -> None:
    saved, loaded = roundtrip(store, pl.DataFrame())
    assert loaded.shape == (0, 0)
    assert saved.metadata["rows"] == 0


def test_object_columns_are_declined() -> None:
    value = pl.DataFrame({"o": [object()]}, schema={"o": pl.Object})
    assert not PolarsMaterializer.accepts(value)
    assert materializer_for(frame()) is PolarsMaterializer
