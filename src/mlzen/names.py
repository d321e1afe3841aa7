"""What a recorded name may be: artifacts, pipelines, runs, steps, models, deployments,
stacks and components.

Names end up in URLs, file names (a deployment's log) and the dashboard, so a name is
1 to 255 characters with no ``/`` or ``\\``, no ``..`` and no control characters.
:func:`check_name` is called where a name is first given (``@step``, ``@pipeline``,
``Model``, the CLI) and again by the metadata store before it records one, so a client
of a team server cannot get around it.
"""

from __future__ import annotations

import unicodedata

from mlzen.errors import InvalidNameError

MAX_NAME_LENGTH = 255


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be recorded, or ``None`` if it can."""
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name.strip():
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if "/" in name or "\\" in name:
        return "it contains a slash"
    if ".." in name:
        return "it contains '..'"
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        return "it contains a control character"
    return None


def check_name(kind: str, name: str) -> str:
    """``name`` if it may name a ``kind`` (``artifact``, ``pipeline``, ``run``, ...).

    Raises:
        InvalidNameError: It may not; the message shows the name and says why.
    """
    problem = name_problem(name)
    if problem is not None:
        shown = repr(name)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise InvalidNameError(
            f"The {kind} name {shown} cannot be recorded: {problem}. Use 1 to "
            f"{MAX_NAME_LENGTH} characters without '/', '\\', '..' or control characters.",
            kind=kind,
            name=shown,
        )
    return name
