"""polars DataFrames as Parquet, written by polars itself (``mlzen[polars]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlzen.artifacts.builtin import MAX_METADATA_COLUMNS
from mlzen.artifacts.materializer import Materializer

DATA_FILE = "data.parquet"


class PolarsMaterializer(Materializer):
    """polars DataFrames as ``data.parquet``, readable by polars, pandas, pyarrow, DuckDB."""

    handled_types = ("polars.dataframe.frame.DataFrame",)

    @classmethod
    def accepts(cls, value: Any) -> bool:
        import polars as pl

        # Object columns hold arbitrary Python values, which Parquet cannot store.
        return type(value) is pl.DataFrame and pl.Object not in value.schema.dtypes()

    def save(self, value: Any, folder: Path) -> None:
        value.write_parquet(folder / DATA_FILE)

    def load(self, folder: Path, data_type: str) -> Any:
        import polars as pl

        return pl.read_parquet(folder / DATA_FILE)

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        shown = value.select(value.columns[:MAX_METADATA_COLUMNS])
        names = shown.columns
        nulls = shown.null_count().row(0) if names else ()
        metadata: dict[str, Any] = {
            "rows": value.height,
            "columns": names,
            "dtypes": {name: str(dtype) for name, dtype in shown.schema.items()},
            "null_counts": dict(zip(names, (int(n) for n in nulls), strict=True)),
        }
        if value.width > MAX_METADATA_COLUMNS:
            metadata["column_count"] = value.width
        return metadata
