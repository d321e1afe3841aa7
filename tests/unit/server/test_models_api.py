"""Models and model versions over real HTTP; promotion needs the editor role."""

from __future__ import annotations

from tests.unit.server.conftest import LiveServer
from tests.unit.server.pipelines_for_server import churn_training


def test_models_versions_and_their_artifacts(live: LiveServer) -> None:
    churn_training(C=1.0)
    second = churn_training(C=0.5)
    models = live.get("/api/v1/models").json()
    assert models["total"] == 1
    churn = models["items"][0]
    assert churn["name"] == "churn"
    assert churn["description"] == "predicts churn"
    assert churn["version_count"] == 2
    versions = live.get("/api/v1/models/churn/versions").json()
    assert [v["number"] for v in versions["items"]] == [2, 1]
    latest = live.get("/api/v1/models/churn/versions/latest").json()
    assert latest["number"] == 2
    assert latest["stage"] == "none"
    assert latest["run_id"] == second.id
    assert latest["artifacts"]["model"]["name"] == "model"
    assert live.get("/api/v1/models/nope").status_code == 404
    assert live.get("/api/v1/models/churn/versions/7").status_code == 404


def test_promotion_by_role_and_stage_conflicts(live: LiveServer) -> None:
    churn_training(C=1.0)
    churn_training(C=0.5)
    promote = "/api/v1/models/churn/versions/{}/promote"
    with live.client("viewer") as viewer:
        refused = viewer.post(promote.format(1), json={"stage": "production"})
    assert refused.status_code == 403
    with live.client("editor") as editor:
        first = editor.post(promote.format(1), json={"stage": "production"})
        assert first.status_code == 200
        assert first.json()["stage"] == "production"
        conflict = editor.post(promote.format(2), json={"stage": "production"})
        assert conflict.status_code == 409
        assert conflict.json()["error"] == "StageConflictError"
        forced = editor.post(promote.format(2), json={"stage": "production", "force": True})
        assert forced.json()["stage"] == "production"
        unknown = editor.post(promote.format(2), json={"stage": "heaven"})
        assert unknown.status_code == 400
    assert live.get("/api/v1/models/churn/versions/1").json()["stage"] == "archived"
    assert live.get("/api/v1/models/churn").json()["production_version"] == 2
    staged = live.get("/api/v1/models/churn/versions", params={"stage": "archived"}).json()
    assert [v["number"] for v in staged["items"]] == [1]
