"""Dispatching builtins must not load any heavy library (click's test_imports.py idea)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = {"numpy", "pandas", "pyarrow", "cloudpickle", "fsspec"}


def modules_loaded_by(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout.splitlines()[-1])}


def test_dispatching_and_storing_an_int_loads_nothing_heavy(tmp_path) -> None:
    code = f"""
import mlzen.artifacts, mlzen.artifacts.materializer, mlzen.artifacts.local
from mlzen.artifacts.materializer import materializer_for, save_artifact, load_artifact
from mlzen.artifacts.store import artifact_store_for
assert materializer_for(3).__name__ == "JSONMaterializer"
store = artifact_store_for({str(tmp_path)!r})
saved = save_artifact(store, {{"n": 3}}, name="n")
assert load_artifact(store, uri=saved.uri, content_hash=saved.content_hash,
    materializer=saved.materializer, data_type=saved.data_type, name="n") == {{"n": 3}}
"""
    assert not modules_loaded_by(code) & HEAVY


def test_importing_the_fsspec_store_module_does_not_import_fsspec() -> None:
    assert "fsspec" not in modules_loaded_by("import mlzen.artifacts.fsspec")
