"""Serving model versions: `mlzen deploy` starts a real uvicorn process on 127.0.0.1,
predictions travel over real HTTP, and the process is checked, killed and stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import pandas as pd
import pytest

from mlzen import Client, Model, deploy_model, pipeline, step
from mlzen.deployers.deployments import deploy, get_deployment, list_deployments, stop_deployment
from mlzen.deployers.local import free_port, is_service_process
from mlzen.errors import DeploymentError
from tests.cli import run_main

# -- a churn model trained on a DataFrame ----------------------------------------------------


@step
def churn_data(rows: int = 300) -> Annotated[pd.DataFrame, "customers"]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, rows),
            "monthly_charges": rng.normal(70.0, 20.0, rows).round(2),
            "senior": rng.random(rows) < 0.2,
        }
    )
    frame["churned"] = ((frame.tenure < 12) & (frame.monthly_charges > 70)).astype(int)
    return frame


@step
def train_churn(customers: pd.DataFrame) -> Annotated[object, "model"]:
    from sklearn.ensemble import RandomForestClassifier

    features = customers.drop(columns="churned")
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(
        features, customers["churned"]
    )


@pipeline(model=Model(name="churn"))
def churn_training() -> None:
    train_churn(churn_data())


@pipeline(model=Model(name="churn"), enable_cache=False)
def churn_training_and_serving(port: int | None = None) -> None:
    model = train_churn(churn_data())
    deploy_model("churn", port=port, after=model)


SAMPLE = [
    {"tenure": 3, "monthly_charges": 95.5, "senior": False},
    {"tenure": 60, "monthly_charges": 40.0, "senior": True},
    {"tenure": 8, "monthly_charges": 82.0, "senior": False},
]


def ok(*args: str) -> str:
    code, out, err = run_main(*args)
    assert code == 0, err
    return out


def can_listen(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (SO_REUSEADDR, as servers set)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(autouse=True)
def stop_servers(project: Path) -> Iterator[None]:
    """Stop every service a test started, whatever state it left them in."""
    yield
    for deployment in list_deployments(live=False):
        if is_service_process(deployment.pid, deployment.name):
            stop_deployment(deployment.name)


@pytest.fixture
def churn_model() -> Any:
    """A trained churn model, version 1 in production; the loaded estimator."""
    churn_training()
    version = Client().get_model_version("churn", "latest")
    version.promote("production")
    return version.get_artifact("model").load()


def http() -> httpx.Client:
    # The services are on this machine: never through a proxy from the environment.
    return httpx.Client(trust_env=False, timeout=30)


# -- the CLI flow -------------------------------------------------------------------------


def test_deploy_predict_info_list_crash_stop(churn_model: Any, project: Path) -> None:
    port = free_port("127.0.0.1")
    out = ok("deploy", "churn:production", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    assert f"as 'churn-production' at {url}" in out
    assert "tenure, monthly_charges, senior" in out

    with http() as client:
        response = client.post(f"{url}/predict", json={"rows": SAMPLE})
        assert response.status_code == 200, response.text
        expected = churn_model.predict(pd.DataFrame(SAMPLE)).tolist()
        assert response.json() == {"predictions": expected}
        # A bare list of records works too.
        assert client.post(f"{url}/predict", json=SAMPLE).json()["predictions"] == expected

        bad_type = client.post(f"{url}/predict", json={"rows": [{**SAMPLE[0], "tenure": "three"}]})
        assert bad_type.status_code == 422
        (error,) = bad_type.json()["detail"]
        assert error["loc"] == ["body", "rows", 0, "tenure"]
        assert "Column 'tenure' expects an integer" in error["msg"]

        missing = client.post(f"{url}/predict", json={"rows": [{"tenure": 1, "senior": True}]})
        assert missing.status_code == 422
        assert [e["msg"] for e in missing.json()["detail"]] == [
            "Column 'monthly_charges' is missing in row 0."
        ]
        extra = client.post(f"{url}/predict", json=[{**SAMPLE[0], "churned": 1}])
        assert extra.status_code == 422
        assert "Column 'churned' in row 0 is not an input" in extra.json()["detail"][0]["msg"]
        not_json = client.post(f"{url}/predict", content=b"{rows", headers={"content-type": "x"})
        assert not_json.status_code == 422

        info = client.get(f"{url}/info").json()
        version = Client().get_model_version("churn", "production")
        artifact = version.get_artifact("model")
        assert info["model_name"] == "churn"
        assert info["model_version"] == 1
        assert info["stage"] == "production"
        assert info["artifact_name"] == "model"
        assert info["content_hash"] == artifact.content_hash
        assert info["columns"] == ["tenure", "monthly_charges", "senior"]
        kinds = {c["name"]: c["kind"] for c in info["input"]["columns"]}
        assert kinds == {"tenure": "integer", "monthly_charges": "number", "senior": "boolean"}
        assert "feature_names_in_" in info["input"]["source"]
        assert client.get(f"{url}/health").json() == {
            "status": "ok",
            "deployment": "churn-production",
        }

    (listed,) = json.loads(ok("deployments", "list", "--json"))
    assert listed["status"] == "running"
    assert listed["url"] == url
    assert listed["model_version_id"] == version.id
    table = ok("deployments", "list")
    assert "churn-production" in table
    assert "running" in table

    logs = ok("deployments", "logs", "churn-production")
    assert "Uvicorn running on" in logs
    assert '"POST /predict HTTP/1.1" 422' in logs
    assert len(ok("deployments", "logs", "churn-production", "--tail", "2").splitlines()) == 2

    # The service dies: the listing notices and records it.
    os.kill(listed["pid"], signal.SIGKILL)
    _wait_until(lambda: not is_service_process(listed["pid"], "churn-production"))
    (crashed,) = json.loads(ok("deployments", "list", "--json"))
    assert crashed["status"] == "crashed"
    assert get_deployment("churn-production", live=False).status == "crashed"

    # Redeploying the name starts it again, on the same port.
    ok("deploy", "churn:production")
    assert get_deployment("churn-production").status == "running"
    assert get_deployment("churn-production").url == url

    out = ok("deployments", "stop", "churn-production")
    assert f"port {port} is free" in out
    assert can_listen(port)
    (stopped,) = json.loads(ok("deployments", "list", "--json"))
    assert stopped["status"] == "stopped"
    assert not is_service_process(stopped["pid"], "churn-production")


def test_the_service_outlives_the_cli_process(churn_model: Any, project: Path) -> None:
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    deployed = subprocess.run(
        [sys.executable, "-m", "mlzen", "deploy", "churn:1", "--name", "detached", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=180,
    )
    deployment = json.loads(deployed.stdout)
    assert deployment["status"] == "running"
    with http() as client:
        response = client.post(f"{deployment['url']}/predict", json={"rows": SAMPLE[:1]})
    assert response.status_code == 200
    assert get_deployment("detached").status == "running"
    stopped = subprocess.run(
        [sys.executable, "-m", "mlzen", "deployments", "stop", "detached"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert stopped.returncode == 0, stopped.stderr
    assert can_listen(deployment["port"])


def test_redeploying_a_name_replaces_the_old_service(churn_model: Any) -> None:
    first = deploy("churn:production", name="svc")
    churn_training.with_options(enable_cache=False)()
    second = deploy("churn:latest", name="svc")
    assert not is_service_process(first.pid, "svc")
    assert is_service_process(second.pid, "svc")
    assert second.url == first.url  # the old port was free again
    with http() as client:
        info = client.get(f"{second.url}/info").json()
    assert info["model_version"] == 2
    assert [d.name for d in list_deployments()] == ["svc"]


def test_user_errors_are_named(churn_model: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_main("deploy", "churn:production", "--port", str(port))
        assert code == 2
        assert f"Port {port} on 127.0.0.1 is in use" in err
    code, _, err = run_main("deploy", "churn:staging")
    assert code == 2
    assert "staging" in err
    code, _, err = run_main("deploy", "churn:1", "--artifact", "scaler")
    assert code == 2
    assert "has no artifact 'scaler'" in err
    code, _, err = run_main("deploy", "churn:1", "--name", "../evil")
    assert code == 2
    assert "Deployment name '../evil' is not allowed" in err
    code, _, err = run_main("deployments", "logs", "nope")
    assert code == 2
    assert "No deployment named 'nope'" in err


# -- a model that cannot be served ------------------------------------------------------------


@step
def not_a_model() -> Annotated[dict[str, int], "model"]:
    return {"weights": 3}


@pipeline(model=Model(name="broken"))
def broken_training() -> None:
    not_a_model()


def test_a_service_that_fails_to_start_is_reported_with_its_log() -> None:
    broken_training()
    with pytest.raises(DeploymentError) as caught:
        deploy("broken", name="broken")
    message = caught.value.message
    assert "exited while starting" in message
    assert "cannot predict" in message
    assert get_deployment("broken", live=False).status == "crashed"


# -- the deploy_model step --------------------------------------------------------------------


def test_deploy_model_step_serves_the_runs_own_version() -> None:
    port = free_port("127.0.0.1")
    run = churn_training_and_serving(port=port)
    deployment = run.steps["deploy_model"].outputs["deployment"].load()
    assert deployment["url"] == f"http://127.0.0.1:{port}"
    assert deployment["status"] == "running"
    assert deployment["model_name"] == "churn"
    assert deployment["model_version"] == 1
    model = Client().get_model_version("churn", 1).get_artifact("model").load()
    with http() as client:
        response = client.post(f"{deployment['url']}/predict", json={"rows": SAMPLE})
    assert response.json()["predictions"] == model.predict(pd.DataFrame(SAMPLE)).tolist()
    assert get_deployment(deployment["name"]).status == "running"


# -- a torch model ----------------------------------------------------------------------------


@step
def train_regressor() -> Annotated[object, "model"]:
    import torch

    torch.manual_seed(0)
    inputs = torch.randn(64, 3)
    targets = inputs @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.25
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(50):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return model


@pipeline(model=Model(name="regressor"))
def torch_training() -> None:
    train_regressor()


def test_torch_model_is_served() -> None:
    torch = pytest.importorskip("torch")
    torch_training()
    deployment = deploy("regressor:latest")
    rows = [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]]
    model = Client().get_model_version("regressor", 1).get_artifact("model").load()
    with torch.no_grad():
        expected = model(torch.tensor(rows)).squeeze(1).tolist()
    with http() as client:
        info = client.get(f"{deployment.url}/info").json()
        response = client.post(f"{deployment.url}/predict", json={"rows": rows})
        short = client.post(f"{deployment.url}/predict", json={"rows": [[1.0, 2.0]]})
        record = client.post(f"{deployment.url}/predict", json={"rows": [{"a": 1.0}]})
    assert info["framework"] == "torch"
    assert info["columns"] == ["x0", "x1", "x2"]
    assert "in_features = 3" in info["input"]["source"]
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(expected, rel=1e-6)
    assert short.status_code == 422
    assert "Row 0 has 2 values; the model takes 3" in short.json()["detail"][0]["msg"]
    assert record.status_code == 422
    assert "Send it as a list of 3 values" in record.json()["detail"][0]["msg"]


def _wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
