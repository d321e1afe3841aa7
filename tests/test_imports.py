"""`import mlzen` must stay light: nothing heavy gets imported."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "sqlalchemy",
    "alembic",
    "pandas",
    "numpy",
    "pyarrow",
    "pydantic",
    "fsspec",
    "cloudpickle",
    "ray",
    "fastapi",
    "torch",
    "yaml",
    "blake3",
]


def loaded_after(code: str) -> set[str]:
    probe = f"import sys, json; {code}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_import_mlzen_loads_nothing_heavy() -> None:
    modules = loaded_after("import mlzen; from mlzen import step, pipeline")
    assert not {m.split(".")[0] for m in modules} & set(HEAVY)


def test_defining_steps_and_pipelines_loads_nothing_heavy() -> None:
    code = (
        "from mlzen import step, pipeline\n"
        "@step\ndef a(x: int = 1) -> int:\n    return x\n"
        "@pipeline\ndef p():\n    a()\n"
        "p.build()"
    )
    modules = loaded_after(code.replace("\n", ";") if False else f"exec({code!r})")
    assert not {m.split(".")[0] for m in modules} & set(HEAVY)


def test_running_an_int_pipeline_loads_no_dataframe_libraries(project) -> None:
    code = (
        "from mlzen import step, pipeline\n"
        "@step\ndef a(x: int = 1) -> int:\n    return x\n"
        "@step\ndef b(x: int) -> int:\n    return x + 1\n"
        "@pipeline\ndef p():\n    b(a())\n"
        "p()"
    )
    modules = loaded_after(f"exec({code!r})")
    assert not {m.split(".")[0] for m in modules} & {"pandas", "numpy", "pyarrow", "cloudpickle"}


def test_lazy_public_names_resolve() -> None:
    import mlzen

    for name in mlzen.__all__:
        assert getattr(mlzen, name) is not None
