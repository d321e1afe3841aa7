"""The REST reference page is written from the server's OpenAPI schema when the docs are
built (docs/hooks/rest_reference.py): every route the server has is on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

HOOK = Path(__file__).parents[1] / "docs" / "hooks" / "rest_reference.py"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rest_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_route_and_schema_of_the_server_is_on_the_page() -> None:
    hook = _hook()
    schema = hook.openapi_schema()
    page = hook.rest_reference(schema)
    for path, operations in schema["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in page
    for name in schema["components"]["schemas"]:
        assert f"### {name} {{ #{hook._anchor(name)} }}" in page
    assert "`DELETE /api/v1/runs/{run}`" in page  # a route from the API's own routers


def _page(src_uri: str) -> SimpleNamespace:
    """What MkDocs hands the hook: a page whose file has ``src_uri``."""
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def test_only_the_rest_page_changes_and_it_must_keep_its_marker() -> None:
    hook = _hook()
    assert hook.on_page_markdown("# Steps\n", _page("concepts/steps.md")) == "# Steps\n"
    with pytest.raises(ValueError, match="lost its marker"):
        hook.on_page_markdown("# REST API\n", _page("reference/rest.md"))
    filled = hook.on_page_markdown(f"# REST API\n{hook.MARKER}\n", _page("reference/rest.md"))
    assert hook.MARKER not in filled and "`GET /health`" in filled
