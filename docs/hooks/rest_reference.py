"""MkDocs hook: the REST reference page, written at build time from the server's OpenAPI
schema, so the routes it lists are the routes the server has.

``docs/reference/rest.md`` holds the marker line ``<!-- rest-reference -->``; this hook
replaces it with every route (grouped by tag), its parameters, body and answers, and the
schemas they use. The schema comes from ``create_app(...).openapi()`` over a throw-away
SQLite store: no server runs.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

MARKER = "<!-- rest-reference -->"
PAGE = "reference/rest.md"
#: Tags in the order the page shows them; the store's routes (one per store function
#: that opts in) come last, as one table.
TAG_ORDER = ["server", "auth", "pipelines", "runs", "artifacts", "models", "stacks", "users"]
TAG_TITLES = {
    "server": "Server",
    "auth": "Sessions",
    "pipelines": "Pipelines",
    "runs": "Runs and steps",
    "artifacts": "Artifacts",
    "models": "Models",
    "stacks": "Stacks",
    "users": "Users and API keys (admin)",
}


def openapi_schema() -> dict[str, Any]:
    """The server's OpenAPI schema, from the app itself."""
    from mlzen.server.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / ".mlzen").mkdir()
        app = create_app(f"sqlite:///{root / 'reference.db'}", project_root=root)
        schema: dict[str, Any] = app.openapi()
    from mlzen.store.metadata import dispose_engines

    dispose_engines()
    return schema


def _text(docstring: str | None) -> str:
    """A route's docstring as Markdown (``code`` in reST becomes `code`)."""
    return re.sub(r"``([^`]+)``", r"`\1`", (docstring or "").strip())


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|").replace("\n", " ")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " or ".join(_type(s) for s in schema[combined])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"dict[str, {_type(schema['additionalProperties'])}]"
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    fmt = f" ({schema['format']})" if "format" in schema else ""
    return f"{kind or 'any'}{fmt}"


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", _text(op.get("description")), ""]
    parameters = op.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in parameters:
            schema = p.get("schema", {})
            default = f" Default `{schema['default']}`." if "default" in schema else ""
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_type(schema)} | "
                f"{'yes' if p.get('required') else 'no'} | "
                f"{_cell(p.get('description') or schema.get('description') or '')}{default} |"
            )
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        lines += [f"Body ({media}): {_type(content.get('schema', {}))}", ""]
    lines += ["| answer | body |", "|---|---|"]
    for code, answer in op.get("responses", {}).items():
        content = answer.get("content", {})
        shapes = [f"{_type(c.get('schema', {}))} ({m})" for m, c in content.items()]
        lines.append(f"| {code} {_cell(answer.get('description', ''))} | {', '.join(shapes)} |")
    return [*lines, ""]


def _schemas(components: dict[str, Any]) -> list[str]:
    lines = ["## Schemas", ""]
    for name, schema in sorted(components.items()):
        lines += [f"### {name} {{ #{_anchor(name)} }}", "", _text(schema.get("description")), ""]
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            lines += ["| field | type | required | description |", "|---|---|---|---|"]
            for field, spec in properties.items():
                lines.append(
                    f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                    f"{_cell(spec.get('description', ''))} |"
                )
            lines.append("")
    return lines


def rest_reference(schema: dict[str, Any]) -> str:
    """The reference as Markdown."""
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            by_tag.setdefault((op.get("tags") or ["server"])[0], []).append((method, path, op))
    unknown = sorted(set(by_tag) - set(TAG_ORDER) - {"store"})
    lines: list[str] = []
    for tag in TAG_ORDER + unknown:
        if tag not in by_tag:
            continue
        lines += [f"## {TAG_TITLES.get(tag, tag.title())}", ""]
        for method, path, op in by_tag[tag]:
            lines += _operation(method, path, op)
    store = by_tag.get("store", [])
    if store:
        lines += [
            "## Store operations",
            "",
            "A client logged in with `mlzen login` records and reads through these: one "
            "route per store function marked `@remote_read` or `@remote_write` "
            "(`mlzen.store.operations`). The body is a [StoreCall](#schema-storecall), the "
            "answer a [StoreResult](#schema-storeresult).",
            "",
            "| route | what it does | role |",
            "|---|---|---|",
        ]
        for method, path, op in store:
            role = "editor" if "editor" in (op.get("description") or "") else "viewer"
            lines.append(f"| `{method.upper()} {path}` | {_cell(op.get('summary', ''))} | {role} |")
        lines.append("")
    lines += _schemas(schema.get("components", {}).get("schemas", {}))
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Fill the REST reference page (MkDocs calls this for every page)."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker line {MARKER!r}")
    return markdown.replace(MARKER, rest_reference(openapi_schema()))
