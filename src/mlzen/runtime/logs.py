"""Capturing what a step prints and logs, per step, even with steps running in threads.

``sys.stdout``/``sys.stderr`` are replaced once by proxies that copy every write to the
buffer of the step running in the current thread (a context variable) and pass it on
to the real stream, so the user still sees the output live.  A logging handler on the
root logger does the same for log records.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

_buffer: ContextVar[io.StringIO | None] = ContextVar("mlzen_step_log_buffer", default=None)
_install_lock = threading.Lock()
_installed = False


class _TeeStream(io.TextIOBase):
    """Writes to the real stream and to the current step's buffer, if any."""

    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.write(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def isatty(self) -> bool:
        return self._real.isatty()

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return self._real.closed

    def fileno(self) -> int:
        return self._real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _StepLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.write(self.format(record) + "\n")


def _install() -> None:
    global _installed
    # Checked on every step: test runners and notebooks swap sys.stdout behind our back.
    if isinstance(sys.stdout, _TeeStream) and isinstance(sys.stderr, _TeeStream) and _installed:
        return
    with _install_lock:
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream(sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream(sys.stderr)
        if _installed:
            return
        handler = _StepLogHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        if not root.handlers and root.level > logging.INFO:
            # Logging was not configured: let steps' info records through to our handler
            # (the console's last-resort handler still shows warnings only).
            root.setLevel(logging.INFO)
        root.addHandler(handler)
        _installed = True


@contextlib.contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Collect stdout, stderr and log records of the current thread into a buffer."""
    _install()
    buffer = io.StringIO()
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
