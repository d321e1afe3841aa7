"""``BodyLimitMiddleware``: refuse a request body over a size limit before it is read.

The team server and every model service run behind it, with the limit the setting
``max_request_bytes`` gives. A request whose ``Content-Length`` is over the limit is
answered ``413`` before the app sees it; a body sent without a length (chunked) is
counted as it arrives and answered ``413`` as soon as it passes the limit, so no more
than the limit is ever held for one request. The answer is JSON in the server's error
shape, naming the limit and the setting that changes it::

    {"error": "RequestTooLarge", "detail": "...", "fields": {"limit_bytes": ..., "setting": ...}}

A pure ASGI middleware, so it needs neither FastAPI nor Starlette to be imported here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SETTING = "max_request_bytes"


class BodyTooLarge(Exception):
    """Raised into the app by ``receive`` once a streamed body passes the limit; the 413
    has already been sent, and whatever the app answers after it is dropped."""


class BodyLimitMiddleware:
    """Answers 413 to any HTTP request whose body is larger than ``limit`` bytes.

    Args:
        app: The ASGI app behind it.
        limit: The largest body accepted, in bytes.
        where: Who refuses, for the message (``the mlzen server``, ``deployment 'churn'``).
    """

    def __init__(self, app: ASGIApp, limit: int, where: str = "the mlzen server") -> None:
        self.app = app
        self.limit = limit
        self.where = where

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            # The server reads and drops the rest of the body once this answer is complete,
            # so a client still sending it gets the 413 rather than a reset connection.
            await self._refuse(send, declared)
            return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not started and not refused:
                        refused = True
                        await self._refuse(send, None)
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                raise

    async def _refuse(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more than that"
        detail = (
            f"The request body is larger than {self.where} accepts: the limit is "
            f"{self.limit} bytes, this one is {size}. Send less in one request (pass large "
            f"data as an artifact), or raise the limit with the setting '{SETTING}' "
            f"(MLZEN_{SETTING.upper()}) where it runs."
        )
        body = json.dumps(
            {
                "error": "RequestTooLarge",
                "detail": detail,
                "fields": {"limit_bytes": self.limit, "setting": SETTING},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
