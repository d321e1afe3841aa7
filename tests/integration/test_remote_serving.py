"""Serving for a project logged in to a team server: the model is read from the server
and the deployment is recorded there, over real HTTP (the fixtures of ``test_remote.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pandas as pd

from mlzen import Client, Model, pipeline
from mlzen.config import load_settings
from mlzen.deployers.deployments import deploy, list_deployments, stop_deployment
from mlzen.store import deployments as records
from mlzen.store.metadata import MetadataStore
from tests.integration.test_remote import TeamServer, login, quiet, team_server
from tests.integration.test_serving import SAMPLE, churn_data, train_churn

__all__ = ["quiet", "team_server"]  # fixtures, used by name


def test_deployments_of_a_logged_in_project_are_recorded_on_the_server(
    team_server: TeamServer, project: Path
) -> None:
    login(team_server)
    model_name = f"churn-{uuid.uuid4().hex[:8]}"  # a model of its own on the shared server

    @pipeline(name=f"serving_{model_name}", model=Model(model_name))
    def training() -> None:
        train_churn(churn_data())

    training()
    deployment = deploy(f"{model_name}:latest")
    try:
        assert deployment.name == f"{model_name}-latest"
        model = Client().get_model_version(model_name, 1).get_artifact("model").load()
        with httpx.Client(trust_env=False, timeout=30) as http:
            response = http.post(f"{deployment.url}/predict", json={"rows": SAMPLE})
        assert response.json()["predictions"] == model.predict(pd.DataFrame(SAMPLE)).tolist()
        on_server = records.get_deployment(team_server.store(), deployment.name)
        assert on_server is not None
        assert on_server["status"] == "running"
        assert deployment.name in {d.name for d in list_deployments()}
        own_store = MetadataStore(load_settings().store_url)
        assert records.list_deployments(own_store) == []
    finally:
        stop_deployment(deployment.name)
    on_server = records.get_deployment(team_server.store(), deployment.name)
    assert on_server is not None
    assert on_server["status"] == "stopped"
