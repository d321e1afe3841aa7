"""Importing objects named ``module:qualname``, the way specs and records name code."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(source: str) -> Any:
    """The object named ``module:qualname`` (``qualname`` may be dotted).

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such object.
    """
    module_name, _, qualname = source.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
