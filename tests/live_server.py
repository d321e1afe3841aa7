"""An ASGI app served for real by uvicorn, in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import threading
import time
from typing import Any


class _Thread(threading.Thread):
    def __init__(self, server: Any) -> None:
        super().__init__(daemon=True)
        self.server = server

    def run(self) -> None:
        self.server.run()


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1; returns server, thread, URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = _Thread(server)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: Any, thread: threading.Thread) -> None:
    """Stop what :func:`start_server` started and wait until its thread has ended."""
    server.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive(), "uvicorn did not stop"
