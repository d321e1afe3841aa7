"""The integrations are registered like outside packages and stay out of core imports."""

from __future__ import annotations

import importlib.metadata

from mlzen.artifacts.materializer import ENTRY_POINT_GROUP, Materializer
from tests.test_imports import loaded_after

EXPECTED = {
    "sklearn.base.BaseEstimator": "mlzen.integrations.sklearn:SklearnMaterializer",
    "polars.dataframe.frame.DataFrame": "mlzen.integrations.polars:PolarsMaterializer",
    "PIL.Image.Image": "mlzen.integrations.pil:PILImageMaterializer",
    "matplotlib.figure.Figure": "mlzen.integrations.matplotlib:FigureMaterializer",
}


def test_each_integration_is_an_entry_point_named_by_its_type() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for type_name, target in EXPECTED.items():
        assert found[type_name].value == target
        cls = found[type_name].load()
        assert issubclass(cls, Materializer)
        assert type_name in cls.handled_types


def test_core_never_imports_the_integrations(project) -> None:
    code = (
        "from mlzen import step, pipeline\n"
        "@step\ndef a(x: int = 1) -> int:\n    return x\n"
        "@pipeline\ndef p():\n    a()\n"
        "p()"
    )
    modules = loaded_after(f"exec({code!r})")
    assert not {m for m in modules if m.startswith("mlzen.integrations")}
    assert not {m.split(".")[0] for m in modules} & {"sklearn", "skops", "polars", "PIL"}
