"""The prediction app over real HTTP (uvicorn on 127.0.0.1 in a thread): answers, 422s,
and no generated body, valid or not, makes it fail with a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from sklearn.linear_model import LinearRegression

from mlzen.deployers.base import ServedModel
from mlzen.deployers.local import free_port
from mlzen.deployers.predictor import Predictor
from mlzen.deployers.schema import Column, InputSchema
from mlzen.deployers.serving import create_app

SERVED = ServedModel(
    artifact_version_id="a" * 32,
    artifact_name="model",
    content_hash="c" * 64,
    model_name="price",
    model_version_id="v" * 32,
    model_version=4,
    stage="staging",
)
SCHEMA = InputSchema(
    (
        Column("rooms", "integer", "int64"),
        Column("area", "number", "float64", nullable=True),
        Column("city", "string", "object"),
    ),
    named=True,
    source="declared in the test",
)


class _Model:
    """A regression on rooms and area; the city is one-hot encoded by hand."""

    def __init__(self) -> None:
        data = pd.DataFrame({"rooms": [1, 2, 3, 4], "area": [30.0, 55.0, 80.0, 120.0]})
        self.linear = LinearRegression().fit(data, [100.0, 180.0, 260.0, 400.0])

    def predict(self, frame: pd.DataFrame) -> Any:
        bonus = (frame["city"] == "paris").astype(float) * 50.0
        return self.linear.predict(frame[["rooms", "area"]].fillna(0.0)) + bonus


@pytest.fixture
def url() -> Iterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1, stopped afterwards."""
    app = create_app("price-staging", Predictor(_Model(), SCHEMA), SERVED)
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


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


def test_predict_info_health(url: str, http: httpx.Client) -> None:
    rows = [{"rooms": 2, "area": 50.0, "city": "paris"}, {"rooms": 3, "area": None, "city": "x"}]
    response = http.post(f"{url}/predict", json={"rows": rows})
    assert response.status_code == 200
    expected = _Model().predict(pd.DataFrame(rows)).tolist()
    assert response.json()["predictions"] == pytest.approx(expected)
    info = http.get(f"{url}/info").json()
    assert info["deployment"] == "price-staging"
    assert (info["model_name"], info["model_version"], info["stage"]) == ("price", 4, "staging")
    assert info["content_hash"] == "c" * 64
    assert info["columns"] == ["rooms", "area", "city"]
    assert info["input"]["source"] == "declared in the test"
    assert info["framework"] == "python"
    assert http.get(f"{url}/health").json() == {"status": "ok", "deployment": "price-staging"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[{", "The body is not JSON"),
        (b'{"rows": [{"rooms": 10000000000000000000000, "area": 1, "city": "x"}]}', "rooms"),
        (b'[{"rooms": 1, "area": 1e400, "city": "x"}]', "area"),
    ],
)
def test_bodies_the_model_cannot_take_are_422(
    url: str, http: httpx.Client, body: bytes, message: str
) -> None:
    response = http.post(f"{url}/predict", content=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_body_is_a_server_error(url: str, mode: GenerationMode) -> None:
    """Bodies generated from the service's own OpenAPI schema, fitting it and not."""
    operation = schemathesis.openapi.from_url(f"{url}/openapi.json")["/predict"]["POST"]
    statuses: set[int] = set()

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        response = case.call(base_url=url)
        assert response.status_code in (200, 422), (case.body, response.text)
        statuses.add(response.status_code)
        if response.status_code == 422:
            assert response.json()["detail"][0]["msg"]

    check()
    # Bodies that do not fit the schema are all refused. Most that fit get predictions;
    # some are refused too: integers near int64's bounds that the generator writes as
    # floats, rounded past them, and values so large the model's arithmetic overflows.
    if mode == GenerationMode.POSITIVE:
        assert 200 in statuses
    else:
        assert statuses == {422}
