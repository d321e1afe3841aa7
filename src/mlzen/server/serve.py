"""Running the server under uvicorn: the bind check and log redaction.

A server on a non-loopback address is reachable by others, so it refuses to start until
an admin user exists (someone must be able to manage access). Access log lines never
carry an API key: keys are accepted only in headers, which uvicorn does not log, and any
``mlzen_...`` key-like text in a logged request line (a key pasted into a URL by
mistake) is replaced by ``mlzen_***``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from typing import TYPE_CHECKING, Any

from mlzen.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlzen.store.metadata import MetadataStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8237
_KEY_LIKE = re.compile(r"mlzen_[A-Za-z0-9_\-]{6,}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(store: MetadataStore, host: str) -> None:
    """Refuse a non-loopback ``host`` while the store has no admin user.

    Raises:
        ConfigError: Names the fix (create an admin user).
    """
    from mlzen.store import users

    if is_loopback(host) or users.count_admins(store) > 0:
        return
    raise ConfigError(
        f"Refusing to serve on {host}: that address is reachable from other machines, and "
        "the server has no admin user yet. Create one first: 'mlzen server users create "
        "NAME --role admin', then start the server again.",
        host=host,
    )


class RedactKeys(logging.Filter):
    """Replaces anything that looks like an API key in a log record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_LIKE.sub("mlzen_***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _KEY_LIKE.sub("mlzen_***", record.msg)
        return True


def uvicorn_server(app: FastAPI, host: str, port: int, *, log_level: str = "info") -> Any:
    """A configured ``uvicorn.Server`` for ``app`` whose logs never show a key."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        lifespan="off",
    )
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
    return uvicorn.Server(config)


def serve(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve ``app`` until interrupted, after the bind check."""
    check_bind(app.state.store, host)
    uvicorn_server(app, host, port).run()
