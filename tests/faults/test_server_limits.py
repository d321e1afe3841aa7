"""Bad input to the team server and to a model service (issue 10, E): answered 4xx in the
``{error, detail, fields}`` shape, never a 500; bodies over ``max_request_bytes``
refused with a 413 before they are read; huge values never echoed back.

The body limit is checked on real processes: ``mlzen server up`` and ``mlzen deploy``
run as processes of their own, and their peak resident memory (``VmHWM``) shows
whether a refused body was ever held.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn

from mlzen.deployers.base import ServedModel
from mlzen.deployers.local import free_port, is_service_process
from mlzen.deployers.predictor import Predictor
from mlzen.deployers.schema import Column, InputSchema
from mlzen.deployers.serving import create_app as create_service
from mlzen.server import auth
from mlzen.server.app import create_app
from tests.unit.server.conftest import LiveServer, backend, live
from tests.unit.server.pipelines_for_server import churn_training, training

__all__ = ["backend", "live"]  # fixtures, used by name

LIMIT = 1024 * 1024
BIG = 48 * 1024 * 1024
ERROR_KEYS = {"error", "detail", "fields"}


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far, in bytes (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def chunks(size: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A JSON body of ``size`` bytes in pieces: sent without a Content-Length (chunked)."""
    yield b'{"arguments": {"x": "'
    left = size
    while left > 0:
        yield b"a" * min(chunk, left)
        left -= chunk
    yield b'"}}'


def assert_refused_as_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error"] == "RequestTooLarge"
    assert body["fields"] == {"limit_bytes": LIMIT, "setting": "max_request_bytes"}
    assert "MLZEN_MAX_REQUEST_BYTES" in body["detail"]


# -- the team server, as its own process -----------------------------------------------


@dataclass
class ServerProcess:
    url: str
    pid: int
    key: str


@pytest.fixture
def server_process(project: Path) -> Iterator[ServerProcess]:
    """``mlzen server up`` over this project with a 1 MiB body limit, and an admin key."""
    training(rows=8)
    store = create_app().state.store
    auth.create_user(store, "admin", "admin-password", "admin")
    key = auth.create_api_key(store, "admin")
    port = free_port("127.0.0.1")
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project), "MLZEN_MAX_REQUEST_BYTES": str(LIMIT)}
    log = (project / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
        [sys.executable, "-m", "mlzen", "server", "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (project / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield ServerProcess(url, process.pid, key)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(server_process: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {server_process.key}"}
    with httpx.Client(base_url=server_process.url, headers=headers, timeout=120) as client:
        small = client.post("/api/v1/store/queries.counts", json={"arguments": {}})
        assert small.status_code == 200, small.text
        before = peak_rss(server_process.pid)

        declared = b'{"arguments": {"x": "' + b"a" * BIG + b'"}}'
        assert_refused_as_too_large(client.post("/api/v1/store/queries.counts", content=declared))
        del declared
        streamed = client.post("/api/v1/store/queries.counts", content=chunks(BIG))
        assert_refused_as_too_large(streamed)

        # Neither body was held: the server's peak memory grew by far less than one.
        assert peak_rss(server_process.pid) - before < BIG // 4
        # It still serves, on the same connection too.
        assert client.post("/api/v1/store/queries.counts", json={"arguments": {}}).is_success


def test_every_route_has_the_limit(server_process: ServerProcess) -> None:
    from tests.unit.server.test_auth import all_routes, concrete

    app = create_app()
    body = b"x" * (LIMIT + 1)
    checked = 0
    with httpx.Client(base_url=server_process.url, timeout=60) as client:
        for method, path in all_routes(app):
            for headers in ({}, {"Authorization": f"Bearer {server_process.key}"}):
                response = client.request(method, concrete(path), content=body, headers=headers)
                assert response.status_code == 413, f"{method} {path}: {response.status_code}"
                checked += 1
    assert checked > 40


# -- 500s that are the client's fault ----------------------------------------------------


def assert_client_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert len(response.text) < 3000  # no huge value echoed back
    return body  # type: ignore[no-any-return]


def test_out_of_range_references_are_client_errors(live: LiveServer) -> None:
    training(rows=8)
    churn_training(C=0.5)
    huge_ref = "a" * 60_000
    with live.client("editor") as editor:
        promote = editor.post(
            "/api/v1/models/churn/versions/99999999999999999999/promote",
            json={"stage": "staging"},
        )
        assert assert_client_error(promote, 404)["error"] == "NotFoundError"
        assert_client_error(editor.get(f"/api/v1/runs/{huge_ref}"), 404)
        assert_client_error(editor.delete(f"/api/v1/runs/{huge_ref}"), 404)
        assert_client_error(
            editor.get("/api/v1/compare", params={"old": huge_ref, "new": "x"}), 404
        )
        assert_client_error(editor.get("/api/v1/models/churn/versions/²"), 400)
        early = {"created_after": "0001-01-01T00:26:28.1+08:59"}
        assert_client_error(editor.get("/api/v1/runs", params=early), 400)
        for path in ("/api/v1/runs", "/api/v1/artifact-versions", "/api/v1/models"):
            assert_client_error(editor.get(path, params={"offset": 10**20}), 422)
        # A run id prefix is matched literally: '%' and '_' are not wildcards.
        assert_client_error(editor.get("/api/v1/runs/%25"), 404)
        assert_client_error(editor.get("/api/v1/runs/_"), 404)
        for page in ("/runs?page=99999999999999999999", f"/runs?q={huge_ref}"):
            assert editor.get(page).status_code == 422
        assert editor.get(f"/runs/{huge_ref}").status_code == 404


def test_validation_errors_name_the_field_without_echoing_the_value(live: LiveServer) -> None:
    huge = "a" * 500_000
    with live.client() as anonymous:
        response = anonymous.post("/api/v1/auth/login", json={"username": huge, "password": "x"})
    body = assert_client_error(response, 422)
    assert body["error"] == "ValidationError"
    assert "body.username" in body["detail"]
    assert body["fields"] == {"location": "body.username"}


# -- a model service --------------------------------------------------------------------


class _Model:
    def predict(self, frame: pd.DataFrame) -> Any:
        return frame["rooms"] * 2.0


SERVED = ServedModel(artifact_version_id="a" * 32, artifact_name="model", content_hash="c" * 64)
SCHEMA = InputSchema(
    (Column("rooms", "integer", "int64"), Column("city", "string", "object")),
    named=True,
    source="declared in the test",
)


@pytest.fixture
def service() -> Iterator[str]:
    """A model service with a 1 MiB body limit under uvicorn on 127.0.0.1."""
    app = create_service("rooms", Predictor(_Model(), SCHEMA), SERVED, max_request_bytes=LIMIT)
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_predict_refuses_deep_huge_and_oversized_bodies_without_echoing_them(
    service: str,
) -> None:
    with httpx.Client(base_url=service, trust_env=False, timeout=60) as http:
        ok = http.post("/predict", json={"rows": [{"rooms": 2, "city": "x"}]})
        assert ok.json() == {"predictions": [4.0]}

        deep = b"[" * 100_000 + b"]" * 100_000
        response = http.post("/predict", content=deep)
        assert response.status_code == 422, response.text[:300]
        assert "too deeply" in response.json()["detail"][0]["msg"]

        digits = b'{"rows": [{"rooms": ' + b"9" * 5000 + b', "city": "x"}]}'
        assert http.post("/predict", content=digits).status_code == 422

        huge = "z" * 500_000
        for row in ({"rooms": huge, "city": "x"}, {"rooms": 1, "city": "x", huge: 1}):
            response = http.post("/predict", json={"rows": [row]})
            assert response.status_code == 422
            assert len(response.text) < 2000, response.text[:300]
        keys = {f"k{i}-{huge[:1000]}": 1 for i in range(50)}
        response = http.post("/predict", json=keys)
        assert response.status_code == 422
        assert len(response.text) < 2000

        assert_refused_as_too_large(http.post("/predict", content=b"[" + b" " * BIG + b"]"))
        assert_refused_as_too_large(http.post("/predict", content=chunks(BIG)))


def test_a_deployed_service_takes_its_limit_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlzen.deployers.deployments import deploy, list_deployments, stop_deployment
    from tests.integration.test_serving import SAMPLE
    from tests.integration.test_serving import churn_training as train_a_churn_model

    train_a_churn_model()
    monkeypatch.setenv("MLZEN_MAX_REQUEST_BYTES", str(LIMIT))
    deployment = deploy("churn:latest")
    try:
        assert deployment.pid is not None
        with httpx.Client(trust_env=False, timeout=120) as http:
            assert http.post(f"{deployment.url}/predict", json={"rows": SAMPLE}).is_success
            before = peak_rss(deployment.pid)
            response = http.post(f"{deployment.url}/predict", content=chunks(BIG))
            assert_refused_as_too_large(response)
            assert "deployment 'churn-latest'" in response.json()["detail"]
            assert peak_rss(deployment.pid) - before < BIG // 4
    finally:
        for found in list_deployments(live=False):
            if is_service_process(found.pid, found.name):
                stop_deployment(found.name)
