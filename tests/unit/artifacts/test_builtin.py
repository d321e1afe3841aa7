from __future__ import annotations

import json
import math
import mmap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlzen.artifacts import builtin
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.materializer import materializer_name, save_artifact

from .helpers import load, roundtrip


def assert_identical(loaded: Any, value: Any) -> None:
    """Equal, and of the same type all the way down (so True is not 1, (1,) not [1])."""
    assert type(loaded) is type(value), (loaded, value)
    if isinstance(value, dict):
        assert list(loaded) == list(value)
        for key in value:
            assert_identical(loaded[key], value[key])
    elif isinstance(value, list | tuple):
        assert len(loaded) == len(value)
        for got, expected in zip(loaded, value, strict=True):
            assert_identical(got, expected)
    elif isinstance(value, float):
        assert repr(loaded) == repr(value)
    else:
        assert loaded == value


@pytest.mark.parametrize(
    "value",
    [
        0,
        -(2**70),
        1.0,
        -0.0,
        True,
        False,
        None,
        "",
        "naïve ☃",
        [],
        [1, True, 1.0, None, "1"],
        (),
        (1, "a", [2, 3], {"k": None}),
        {},
        {"a": {"b": {"c": [1, {"d": False}]}}, "": 0},
    ],
    ids=repr,
)
def test_json_values_round_trip_exactly(store: LocalArtifactStore, value: Any) -> None:
    saved, loaded = roundtrip(store, value)

    assert saved.materializer == materializer_name(builtin.JSONMaterializer)
    assert_identical(loaded, value)
    stored = json.loads((Path(saved.uri) / "data.json").read_text())
    assert stored == (list(value) if isinstance(value, tuple) else value)


def test_nan_and_infinity_round_trip(store: LocalArtifactStore) -> None:
    _, loaded = roundtrip(store, [math.nan, math.inf, -math.inf])

    assert math.isnan(loaded[0]) and loaded[1:] == [math.inf, -math.inf]


def test_json_metadata() -> None:
    extract = builtin.JSONMaterializer().extract_metadata

    assert extract([1, 2, 3]) == {"length": 3}
    assert extract((1,)) == {"length": 1}
    assert extract({"a": 1, "b": 2}) == {"length": 2}
    assert extract("abc") == {"length": 3, "value": "abc"}
    assert extract("x" * 1000) == {"length": 1000}
    assert extract(7) == {"value": 7}
    assert extract(2.5) == {"value": 2.5}
    assert extract(True) == {"value": True}
    assert extract(None) == {"value": None}
    assert extract(math.nan) == {}
    assert extract(2**80) == {}


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path_factory.mktemp("hypothesis") / "artifacts")


@settings(max_examples=150, deadline=None)
@given(value=json_values | st.lists(json_values, max_size=4).map(tuple))
def test_any_nested_builtin_value_round_trips_as_json(
    shared_store: LocalArtifactStore, value: Any
) -> None:
    saved, loaded = roundtrip(shared_store, value)

    assert saved.materializer == materializer_name(builtin.JSONMaterializer)
    assert_identical(loaded, value)


@pytest.mark.parametrize("value", [b"", b"\x00\xff" * 10, bytearray(b"mutable")], ids=repr)
def test_bytes_round_trip(store: LocalArtifactStore, value: bytes | bytearray) -> None:
    saved, loaded = roundtrip(store, value)

    assert_identical(loaded, value)
    assert (Path(saved.uri) / "data.bin").read_bytes() == value
    assert saved.metadata == {"size": len(value)}


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.asfortranarray(np.ones((2, 3))),
        np.zeros((0, 3)),
        np.array(2.5),
        np.array(["a", "bc"]),
        np.array([(1, 2.0)], dtype=[("i", "i4"), ("f", "f8")]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
    ],
    ids=["int-2d", "fortran", "empty", "0-d", "unicode", "structured", "datetime"],
)
def test_numpy_arrays_round_trip(store: LocalArtifactStore, array: np.ndarray) -> None:
    saved, loaded = roundtrip(store, array)

    assert saved.materializer == materializer_name(builtin.NumpyMaterializer)
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert np.load(Path(saved.uri) / "data.npy").shape == array.shape


def test_numpy_arrays_load_memory_mapped(store: LocalArtifactStore) -> None:
    _, loaded = roundtrip(store, np.arange(1000, dtype=np.float64))

    assert isinstance(loaded, np.memmap) or isinstance(loaded.base, mmap.mmap)


def test_changing_a_loaded_array_leaves_the_artifact_intact(store: LocalArtifactStore) -> None:
    saved, loaded = roundtrip(store, np.zeros(100))

    loaded += 1  # copy-on-write mapping: allowed, and private to this process

    assert float(loaded.sum()) == 100.0
    np.testing.assert_array_equal(load(store, saved), np.zeros(100))


@pytest.mark.parametrize(
    "scalar", [np.float64(1.5), np.int64(-3), np.bool_(True), np.float32(0.25)], ids=repr
)
def test_numpy_scalars_round_trip_as_numpy_scalars(
    store: LocalArtifactStore, scalar: np.generic
) -> None:
    saved, loaded = roundtrip(store, scalar)

    assert saved.materializer == materializer_name(builtin.NumpyMaterializer)
    assert type(loaded) is type(scalar) and loaded == scalar


def test_object_arrays_are_pickled_with_a_warning(store: LocalArtifactStore) -> None:
    array = np.array([{"a": 1}, None], dtype=object)

    with pytest.warns(UserWarning, match="NumpyMaterializer cannot store this numpy.ndarray"):
        saved, loaded = roundtrip(store, array)

    assert saved.materializer == materializer_name(builtin.PickleMaterializer)
    assert loaded.dtype == object and list(loaded) == list(array)


def test_masked_arrays_keep_their_mask_through_pickle(store: LocalArtifactStore) -> None:
    masked = np.ma.array([1, 2, 3], mask=[False, True, False])

    with pytest.warns(UserWarning):
        _, loaded = roundtrip(store, masked)

    assert list(loaded.mask) == [False, True, False]


def test_numpy_metadata() -> None:
    extract = builtin.NumpyMaterializer().extract_metadata

    assert extract(np.array([[1.0, np.nan], [3.0, 5.0]])) == {
        "shape": [2, 2],
        "dtype": "float64",
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
    }
    ints = extract(np.array([4, -2, 7], dtype=np.int16))
    assert (ints["min"], ints["max"], ints["mean"]) == (-2, 7, 3.0)
    assert type(ints["min"]) is int
    assert extract(np.zeros((0, 2))) == {"shape": [0, 2], "dtype": "float64"}
    assert extract(np.array([True])) == {"shape": [1], "dtype": "bool"}
    assert extract(np.full(3, np.nan)) == {
        "shape": [3],
        "dtype": "float64",
        "min": None,
        "max": None,
        "mean": None,
    }
    json.dumps(extract(np.array([np.inf, 1.0])))


@pytest.fixture
def frame_with_nulls() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "price": [1.0, None, 3.0],
            "name": ["a", None, "c"],
            "count": pd.array([1, None, 5], dtype="Int64"),
            "flag": [True, False, True],
        },
        index=pd.Index([10, 20, 30], name="id"),
    )


def test_dataframe_round_trips_as_parquet(
    store: LocalArtifactStore, frame_with_nulls: pd.DataFrame
) -> None:
    saved, loaded = roundtrip(store, frame_with_nulls)

    assert saved.materializer == materializer_name(builtin.PandasMaterializer)
    pd.testing.assert_frame_equal(loaded, frame_with_nulls)
    assert pd.read_parquet(Path(saved.uri) / "data.parquet").shape == (3, 4)


def test_dataframe_metadata(frame_with_nulls: pd.DataFrame) -> None:
    metadata = builtin.PandasMaterializer().extract_metadata(frame_with_nulls)

    assert metadata["rows"] == 3
    assert metadata["columns"] == ["price", "name", "count", "flag"]
    assert metadata["dtypes"]["price"] == "float64"
    assert metadata["dtypes"]["count"] == "Int64"
    assert metadata["null_counts"] == {"price": 1, "name": 1, "count": 1, "flag": 0}
    assert metadata["stats"] == {
        "price": {"min": 1.0, "max": 3.0, "mean": 2.0},
        "count": {"min": 1, "max": 5, "mean": 3.0},
    }
    json.dumps(metadata)


def test_wide_frames_keep_metadata_small() -> None:
    wide = pd.DataFrame(np.zeros((2, builtin.MAX_METADATA_COLUMNS + 10)))

    metadata = builtin.PandasMaterializer().extract_metadata(wide)

    assert len(metadata["columns"]) == len(metadata["stats"]) == builtin.MAX_METADATA_COLUMNS
    assert metadata["column_count"] == builtin.MAX_METADATA_COLUMNS + 10


def test_frame_with_non_string_labels_round_trips(store: LocalArtifactStore) -> None:
    frame = pd.DataFrame(np.arange(6).reshape(3, 2), index=pd.Index(["x", "y", "z"]))

    _, loaded = roundtrip(store, frame)

    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize("name", ["price", None, 0, 1.5])
def test_series_round_trips_with_its_name_and_index(store: LocalArtifactStore, name: Any) -> None:
    series = pd.Series([1.5, None, 3.0], index=pd.Index(["u", "v", "w"], name="key"), name=name)

    saved, loaded = roundtrip(store, series)

    assert saved.data_type in ("pandas.Series", "pandas.core.series.Series")
    pd.testing.assert_series_equal(loaded, series)
    assert type(loaded.name) is type(name)
    column = "0" if name is None else str(name)  # as pandas' to_frame() labels it
    assert saved.metadata["rows"] == 3 and saved.metadata["null_counts"] == {column: 1}
    assert pq.read_table(Path(saved.uri) / "data.parquet").num_columns == 2  # values + index


def test_dataframe_subclass_is_not_stored_as_a_plain_frame(store: LocalArtifactStore) -> None:
    class Tagged(pd.DataFrame):
        @property
        def _constructor(self) -> type:
            return Tagged

    with pytest.warns(UserWarning, match="PandasMaterializer cannot store"):
        _, loaded = roundtrip(store, Tagged({"a": [1]}))

    assert type(loaded).__name__ == "Tagged"


def test_arrow_table_round_trips(store: LocalArtifactStore) -> None:
    table = pa.table({"x": [1, 2, None], "y": ["a", "b", "c"]})

    saved, loaded = roundtrip(store, table)

    assert saved.data_type == "pyarrow.lib.Table"
    assert saved.materializer == materializer_name(builtin.ArrowMaterializer)
    assert loaded.equals(table)
    assert saved.metadata["rows"] == 3
    assert saved.metadata["columns"] == ["x", "y"]
    assert "x: int64" in saved.metadata["schema"]


def test_unpicklable_value_fails_with_a_materializer_error(store: LocalArtifactStore) -> None:
    import threading

    from mlzen.errors import MaterializerError

    with pytest.warns(UserWarning), pytest.raises(MaterializerError, match="_thread.lock"):
        save_artifact(store, threading.Lock(), name="lock")
    assert store.list_uris() == []


class Custom:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and other.x == self.x

    __hash__ = None  # type: ignore[assignment]


def test_custom_class_round_trips_through_pickle(store: LocalArtifactStore) -> None:
    with pytest.warns(UserWarning, match="no materializer for .*Custom"):
        saved, loaded = roundtrip(store, Custom(3))

    assert loaded == Custom(3)
    assert (Path(saved.uri) / "data.pkl").is_file()
    assert saved.metadata == {}
