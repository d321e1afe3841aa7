"""The dashboard's Jinja2 environment (autoescaping on) and the filters its templates use
to show durations, times, sizes and type names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mlzen.server.dashboard import graphs, queries

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render template ``name``; every page also gets the logged-in ``user`` and, when
    the browser is logged in with a session, the ``csrf_token`` its forms carry."""
    session = getattr(request.state, "session", None)
    context = {
        "user": getattr(request.state, "user", None),
        "csrf_token": session.csrf_token if session is not None else "",
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 7 min``; a dash for ``None``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def span(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``; ``None`` while either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def when(value: datetime | None) -> str:
    """A stored (UTC) time to the second; a dash for ``None``."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def size(value: int | None) -> str:
    """Bytes in binary units: ``512 B``, ``2.2 KiB``, ``1.5 GiB``."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def short_type(data_type: str) -> str:
    """The last part of a dotted type name: ``pandas.DataFrame`` → ``DataFrame``."""
    return data_type.rpartition(".")[2] or data_type


templates.env.filters.update(
    duration=duration,
    when=when,
    size=size,
    pretty=queries.as_json,
    short_type=short_type,
)
templates.env.globals.update(
    span=span, step_href=graphs.step_href, artifact_href=graphs.artifact_href
)
