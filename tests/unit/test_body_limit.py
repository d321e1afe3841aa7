"""``BodyLimitMiddleware`` in front of a small ASGI app, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlzen.body_limit import BodyLimitMiddleware
from tests.live_server import start_server, stop_server

LIMIT = 64 * 1024


class EchoLength:
    """Reads the whole body and answers how long it was; records what it saw."""

    def __init__(self) -> None:
        self.read: list[int] = []
        self.finished_reading = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.finished_reading += 1
        self.read.append(size)
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def echo() -> EchoLength:
    return EchoLength()


@pytest.fixture
def url(echo: EchoLength) -> Iterator[str]:
    server, thread, url = start_server(BodyLimitMiddleware(echo, LIMIT, where="the test app"))
    try:
        yield url
    finally:
        stop_server(server, thread)


def pieces(size: int, piece: int = 4096) -> Iterator[bytes]:
    for start in range(0, size, piece):
        yield b"x" * min(piece, size - start)


def test_bodies_up_to_the_limit_reach_the_app(url: str, echo: EchoLength) -> None:
    with httpx.Client(base_url=url) as client:
        assert client.post("/", content=b"x" * LIMIT).text == str(LIMIT)
        assert client.post("/", content=pieces(LIMIT)).text == str(LIMIT)
        assert client.get("/").text == "0"
    assert echo.read == [LIMIT, LIMIT, 0]


def test_a_declared_length_over_the_limit_never_reaches_the_app(url: str, echo: EchoLength) -> None:
    with httpx.Client(base_url=url) as client:
        response = client.post("/", content=b"x" * (LIMIT + 1))
        assert response.status_code == 413
        body = response.json()
        assert body["error"] == "RequestTooLarge"
        assert body["fields"] == {"limit_bytes": LIMIT, "setting": "max_request_bytes"}
        assert f"{LIMIT + 1} bytes" in body["detail"]
        assert "the test app" in body["detail"]
        # The connection is still good for the next request.
        assert client.post("/", content=b"ok").text == "2"
    assert echo.read == [2]


def test_a_streamed_body_is_cut_off_once_past_the_limit(url: str, echo: EchoLength) -> None:
    with httpx.Client(base_url=url) as client:
        response = client.post("/", content=pieces(LIMIT * 8))
        assert response.status_code == 413
        assert "more than that" in response.json()["detail"]
    # The app was stopped while reading: it never finished, so it never answered.
    assert echo.finished_reading == 0


def test_other_scopes_pass_through() -> None:
    import asyncio

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        pass

    asyncio.run(BodyLimitMiddleware(app, 1)({"type": "lifespan"}, nothing, ignore))
    assert seen == ["lifespan"]
