"""Calling a served model: which input it takes and how its predictions come out.

A scikit-learn estimator (or anything with ``predict``) gets a pandas DataFrame with the
training columns and dtypes (a NumPy array when its columns have no names); a torch
``nn.Module`` gets a float32 tensor in eval mode without gradients. Predictions come
back as JSON-ready lists.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlzen.deployers import schema as s
from mlzen.errors import ConfigError

if TYPE_CHECKING:
    from mlzen.client import ArtifactVersion

#: Metadata keys a model version or model artifact may declare its input with.
DECLARED_KEYS = ("input_schema", "columns")


class PredictionError(Exception):
    """The model rejected the rows (a 422: the client's input is at fault)."""


class Predictor:
    """A loaded model with the schema its input is checked against.

    Attributes:
        model: The model object.
        framework: ``sklearn``, ``torch`` or ``python`` (anything with ``predict``).
        schema: Its input schema.
    """

    def __init__(self, model: Any, schema: s.InputSchema) -> None:
        self.model = model
        self.framework = framework_of(model)
        self.schema = schema
        if self.framework == "torch":
            model.eval()

    @property
    def model_class(self) -> str:
        kind = type(self.model)
        return f"{kind.__module__}.{kind.__qualname__}"

    def predict(self, rows: list[Any]) -> list[Any]:
        """Predictions for rows already checked by ``schema.parse`` (values in column
        order).

        Raises:
            PredictionError: The model raised on these rows (e.g. an unseen category).
        """
        try:
            if self.framework == "torch":
                return self._predict_torch(rows)
            return _plain(self.model.predict(self._frame(rows)))
        # Warning: a numeric warning the process turned into an error (``-W error``).
        except (ValueError, TypeError, LookupError, ArithmeticError, RuntimeError, Warning) as exc:
            raise PredictionError(
                f"The model rejected the rows: {type(exc).__name__}: {exc}"
            ) from exc

    def _frame(self, rows: list[Any]) -> Any:
        import numpy as np
        import pandas as pd

        if not self.schema.columns:
            if rows and all(isinstance(row, dict) for row in rows):
                return pd.DataFrame(rows)
            return np.asarray(rows)
        if not self.schema.named:
            return np.asarray(rows, dtype=float)

        frame = pd.DataFrame(rows, columns=self.schema.names)
        for column in self.schema.columns:
            # JSON has no dtypes: an int64 column trained as float64, a string as category.
            if column.dtype and column.kind != "any":
                try:
                    frame[column.name] = frame[column.name].astype(_castable(column))
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise PredictionError(
                        f"Column '{column.name}' cannot be read as {column.dtype}: {exc}"
                    ) from exc
        return frame

    def _predict_torch(self, rows: list[list[Any]]) -> list[Any]:
        import torch

        inputs = torch.tensor(rows, dtype=torch.float32)
        with torch.no_grad():
            output = self.model(inputs)
        if isinstance(output, torch.Tensor):
            if output.ndim == 2 and output.shape[1] == 1:
                output = output[:, 0]
            return _plain(output.cpu().numpy())
        return _plain(output)


def _castable(column: s.Column) -> str:
    if column.kind == "datetime":
        return "datetime64[ns]"
    if column.kind == "integer" and column.nullable:
        return "float64"  # a null in an integer column
    return column.dtype or "object"


def _plain(value: Any) -> list[Any]:
    """A model's output as JSON values (NaN and infinities as null)."""
    tolist = getattr(value, "tolist", None)
    items = tolist() if callable(tolist) else list(value)
    return [_json_value(item) for item in items]


def _json_value(item: Any) -> Any:
    if isinstance(item, float) and not math.isfinite(item):
        return None  # JSON has no NaN or infinity
    if isinstance(item, list):
        return [_json_value(i) for i in item]
    return item


def framework_of(model: Any) -> str:
    """``torch``, ``sklearn`` or ``python`` (an object with ``predict``).

    Raises:
        ConfigError: The object cannot predict.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    if callable(getattr(model, "predict", None)):
        return "sklearn" if type(model).__module__.startswith("sklearn.") else "python"
    raise ConfigError(
        f"The artifact holds a {type(model).__module__}.{type(model).__qualname__}, which "
        "cannot predict: serve a scikit-learn estimator, a torch nn.Module or an object "
        "with a predict(rows) method.",
        model_class=type(model).__qualname__,
    )


def infer_schema(
    model: Any,
    artifact: ArtifactVersion | None = None,
    declared: Mapping[str, Any] | None = None,
) -> s.InputSchema:
    """The input schema of ``model`` (see :mod:`mlzen.deployers.schema` for the order).

    Args:
        model: The loaded model.
        artifact: The artifact it was loaded from: its metadata and lineage are read.
        declared: The model version's metadata.
    """
    sources: list[tuple[str, Mapping[str, Any]]] = [
        ("the model version's metadata", declared or {})
    ]
    if artifact is not None:
        sources.append((f"artifact '{artifact.name}' metadata", artifact.metadata))
    for where, metadata in sources:
        for key in DECLARED_KEYS:
            found = s.from_declared(metadata.get(key), f"'{key}' in {where}")
            if found is not None:
                return found
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(name) for name in names]
        dtypes, nulls, origin = _training_dtypes(artifact, names)
        source = "feature_names_in_ of the model" + (
            f", types from the training input {origin}" if origin else ", types unknown"
        )
        return s.from_names(names, dtypes, nulls, source)
    count = getattr(model, "n_features_in_", None)
    if isinstance(count, int):
        return s.positional(
            count,
            f"n_features_in_ = {count}: column names unknown, send each row as a list of "
            f"{count} numbers in training order",
        )
    count = _torch_in_features(model)
    if count is not None:
        return s.positional(
            count,
            f"in_features = {count} of the first layer: send each row as a list of {count} numbers",
        )
    return s.UNKNOWN


def _training_dtypes(
    artifact: ArtifactVersion | None, names: list[str]
) -> tuple[dict[str, str], dict[str, int] | None, str | None]:
    """dtypes (and null counts) of ``names`` recorded for the DataFrame that the step
    which produced ``artifact`` read; the one covering most of ``names``."""
    if artifact is None:
        return {}, None, None
    producer = artifact.producer
    if producer is None:
        return {}, None, None
    best: tuple[int, dict[str, str], dict[str, int] | None, str] | None = None
    for input_name, version in producer.inputs.items():
        metadata = version.metadata
        dtypes = metadata.get("dtypes")
        if not isinstance(dtypes, dict):
            continue
        covered = sum(1 for name in names if name in dtypes)
        if covered and (best is None or covered > best[0]):
            nulls = metadata.get("null_counts")
            best = (
                covered,
                {name: str(dtypes[name]) for name in names if name in dtypes},
                nulls if isinstance(nulls, dict) else None,
                f"'{input_name}' ({version.name}:{version.version})",
            )
    if best is None:
        return {}, None, None
    return best[1], best[2], best[3]


def _torch_in_features(model: Any) -> int | None:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return None
    for module in model.modules():
        in_features = getattr(module, "in_features", None)
        if isinstance(in_features, int):
            return in_features
    return None
