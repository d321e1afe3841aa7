"""The dashboard: server-rendered pages over the metadata store, at ``/``.

``router`` holds the pages (``routes``); ``STATIC_DIR`` the stylesheet and the small
script that keeps run pages live, which the app mounts at ``/static``. Templates are
Jinja2 with autoescaping; graphs are laid out in Python (``dag``) and drawn as inline
SVG, so there is no JavaScript build step anywhere.
"""

from __future__ import annotations

from pathlib import Path

from mlzen.server.dashboard.routes import router

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "router"]
