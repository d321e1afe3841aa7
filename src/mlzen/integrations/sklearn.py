"""scikit-learn estimators and pipelines, saved with skops (``mlzen[sklearn]``).

skops writes a format that loads without running pickle, but only for the types it
trusts. When a model holds anything else (a custom estimator, a lambda), loading it
would mean trusting that code, so the model is saved with joblib instead and the
artifact's metadata says so: ``{"format": "joblib", "note": ...}``.

Hyper-parameters (``get_params(deep=False)``, nested estimators expanded) are recorded
as metadata, so runs can be compared by them without loading the model; ``mlzen.compare``
of two estimators diffs their ``get_params(deep=True)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlzen.artifacts.materializer import Materializer, type_path
from mlzen.comparison import ModelDiff
from mlzen.explain import _changes

SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
SKOPS_MISSING = "<skops not installed>"
_MAX_DEPTH = 8
_MAX_REPR = 256


class SklearnMaterializer(Materializer):
    """scikit-learn estimators as ``model.skops``, or ``model.joblib`` when skops can't.

    Registered for ``sklearn.base.BaseEstimator``, so every estimator, transformer and
    ``Pipeline`` reaches it through its MRO.
    """

    handled_types = ("sklearn.base.BaseEstimator",)

    def __init__(self) -> None:
        # save() writes the model once; extract_metadata() then reuses what it learned
        # instead of serialising a possibly large model a second time.
        self._untrusted: list[str] | None = None

    def save(self, value: Any, folder: Path) -> None:
        try:
            import skops.io
        except ImportError:
            import joblib

            self._untrusted = [SKOPS_MISSING]
            joblib.dump(value, folder / JOBLIB_FILE)
            return
        path = folder / SKOPS_FILE
        skops.io.dump(value, path)
        self._untrusted = sorted(skops.io.get_untrusted_types(file=path))
        if self._untrusted:
            import joblib

            path.unlink()
            joblib.dump(value, folder / JOBLIB_FILE)

    def load(self, folder: Path, data_type: str) -> Any:
        if (folder / JOBLIB_FILE).exists():
            import joblib

            # The artifact's hash was verified against the one recorded at save time.
            return joblib.load(folder / JOBLIB_FILE)
        import skops.io

        # No trusted list: only the types skops trusts by default load, as when saved.
        return skops.io.load(folder / SKOPS_FILE)

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        untrusted = self._untrusted
        if untrusted is None:
            try:
                import skops.io
            except ImportError:
                untrusted = [SKOPS_MISSING]
            else:
                untrusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(value)))
        metadata: dict[str, Any] = {"class": type_path(type(value))}
        if untrusted == [SKOPS_MISSING]:
            metadata["format"] = "joblib"
            metadata["note"] = (
                "skops is not installed (pip install 'mlzen[sklearn]'), so the model is saved "
                "with joblib (pickle): load it only from a trusted source."
            )
        elif untrusted:
            metadata["format"] = "joblib"
            metadata["note"] = (
                f"skops would not load {', '.join(untrusted)} without trusting it, so the "
                "model is saved with joblib (pickle): load it only from a trusted source, "
                "with the same classes importable."
            )
        else:
            metadata["format"] = "skops"
        metadata["fitted"] = _is_fitted(value)
        metadata["params"] = _json_safe(value.get_params(deep=False), 0)
        return metadata

    @classmethod
    def compare_saved(cls, old: Path, new: Path) -> ModelDiff:
        """Class and ``get_params(deep=True)`` differences, nested pipelines included."""
        before, after = cls().load(old, ""), cls().load(new, "")
        return ModelDiff(
            framework="sklearn",
            class_old=type_path(type(before)),
            class_new=type_path(type(after)),
            hyperparameters=_changes(flat_params(before), flat_params(after)),
        )


def flat_params(estimator: Any) -> dict[str, Any]:
    """``get_params(deep=True)`` as JSON: nested parameters as ``step__param``, nested
    estimators (and ``steps``/``transformers`` lists) by their class."""
    from sklearn.base import BaseEstimator

    def plain(value: Any) -> Any:
        if isinstance(value, BaseEstimator):
            return type_path(type(value))
        if isinstance(value, list | tuple) and any(
            isinstance(part, list | tuple) and any(isinstance(x, BaseEstimator) for x in part)
            for part in value
        ):
            return [[plain(x) for x in part] for part in value]
        return _json_safe(value, 0)

    return {key: plain(value) for key, value in sorted(estimator.get_params(deep=True).items())}


def _is_fitted(estimator: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):
        return False
    return True


def _json_safe(value: Any, depth: int) -> Any:
    """``value`` as JSON: nested estimators as their class and parameters, else a repr."""
    from sklearn.base import BaseEstimator

    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, BaseEstimator):
            return {
                "class": type_path(type(value)),
                "params": _json_safe(value.get_params(deep=False), depth + 1),
            }
        if isinstance(value, list | tuple):
            return [_json_safe(item, depth + 1) for item in value]
        if isinstance(value, dict):
            return {str(key): _json_safe(item, depth + 1) for key, item in value.items()}
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _json_safe(item(), depth + 1)  # a numpy scalar
    if isinstance(value, type):
        return type_path(value)
    return repr(value)[:_MAX_REPR]
