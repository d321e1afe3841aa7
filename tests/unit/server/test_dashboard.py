"""The dashboard's pages over real HTTP (uvicorn on 127.0.0.1, SQLite and PostgreSQL):
login, runs, run DAG, live status, step, artifact, visualizations, models, compare."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest

from mlzen import Client, Model, pipeline, step
from mlzen.errors import RunFailedError
from mlzen.server.dashboard import routes
from tests.unit.server.conftest import PASSWORDS, LiveServer
from tests.unit.server.pipelines_for_server import training


def post_login(client: httpx.Client, **form: str) -> httpx.Response:
    """Fetch the login form, then post it with its pre-session token, as a browser does
    (a browser already logged in is sent on by the form, and keeps the token's cookie)."""
    page = client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    token = found[1] if found else client.cookies.get("mlzen_login")
    assert token, page.text
    return client.post("/login", data={**form, "csrf_token": token})


def csrf_token(client: httpx.Client) -> str:
    """The session's CSRF token, as the dashboard's forms carry it."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/runs").text)
    assert token is not None
    return token[1]


def browser(live: LiveServer, role: str = "viewer") -> httpx.Client:
    """An HTTP client logged in through the login form, holding the session cookie."""
    client = httpx.Client(base_url=live.url, timeout=30)
    response = post_login(client, name=role, password=PASSWORDS[role], next="/runs")
    if response.status_code != 303:
        client.close()
    assert response.status_code == 303
    assert response.headers["location"] == "/runs"
    assert "mlzen_session" in client.cookies
    return client


@pytest.fixture
def viewer(live: LiveServer) -> Iterator[httpx.Client]:
    client = browser(live)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def two_runs(live: LiveServer) -> tuple[str, str]:
    first = training(rows=20, C=1.0)
    second = training(rows=40, C=0.5)
    return first.id, second.id


def test_pages_of_an_empty_store_say_what_to_do(viewer: httpx.Client) -> None:
    assert "No runs match." in viewer.get("/runs").text
    assert "No pipelines yet." in viewer.get("/pipelines").text
    assert "No artifacts yet" in viewer.get("/artifacts").text
    assert "No models yet." in viewer.get("/models").text


def test_pipeline_pages_list_pipelines_with_their_dag_and_runs(
    viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    listing = viewer.get("/pipelines").text
    assert re.search(r'href="/pipelines/training">training</a></td>\s*<td>2</td>', listing)
    page = viewer.get("/pipelines/training").text
    nodes = re.findall(r'data-node="([^"]+)" data-status=""', page)
    assert sorted(nodes) == ["evaluate", "load", "split", "train"]
    assert page.count('class="run-link"') == 2
    assert viewer.get("/pipelines/nope").status_code == 404


def test_pages_send_anonymous_visitors_to_the_login_form(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        for path in ("/", "/runs", "/runs/x", "/pipelines", "/artifacts", "/models", "/compare"):
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login")
        response = anonymous.get("/runs?status=failed")
        assert response.headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
        for path in ("/runs/rows", "/runs/x/live.json", "/artifact-versions/x/visualizations/p"):
            assert anonymous.get(path).status_code == 401, path
        form = anonymous.get("/login")
        assert form.status_code == 200
        assert '<input name="password" type="password"' in form.text


def test_login_rejects_a_wrong_password_and_never_redirects_off_site(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        wrong = post_login(client, name="viewer", password="nope-nope")
        assert wrong.status_code == 401
        assert "Wrong user name or password." in wrong.text
        assert "mlzen_session" not in client.cookies
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            response = post_login(client, name="viewer", password=PASSWORDS["viewer"], next=target)
            assert response.headers["location"] == "/runs"
        response = post_login(client, name="viewer", password=PASSWORDS["viewer"], next="/models")
        assert response.headers["location"] == "/models"
        assert client.get("/runs").status_code == 200
        client.post("/logout", data={"csrf_token": csrf_token(client)})
        assert "mlzen_session" not in client.cookies
        assert client.get("/runs").status_code == 303


def test_runs_page_lists_filters_and_pages_runs(
    live: LiveServer, viewer: httpx.Client, two_runs: tuple[str, str], monkeypatch
) -> None:
    first, second = (Client().get_pipeline_run(r) for r in two_runs)
    page = viewer.get("/runs")
    assert page.status_code == 200
    assert page.text.index(second.name) < page.text.index(first.name)  # newest first
    assert 'data-live-rows="/runs/rows?page=1"' in page.text
    assert viewer.get("/runs", params={"status": "failed"}).text.count('class="run-link"') == 0
    assert viewer.get("/runs", params={"pipeline": "training"}).text.count("run-link") == 2
    found = viewer.get("/runs", params={"q": second.name[-6:]})
    assert second.name in found.text and first.name not in found.text
    monkeypatch.setattr(routes, "PER_PAGE", 1)
    page_two = viewer.get("/runs", params={"page": 2})
    assert first.name in page_two.text and second.name not in page_two.text
    assert "page 2 of 2 · 2 runs" in page_two.text
    rows = viewer.get("/runs/rows")
    assert rows.text.lstrip().startswith("<tr") and second.name in rows.text
    assert f'<input type="checkbox" name="run" value="{second.id}"' in rows.text


def test_run_page_draws_the_dag_with_statuses_cache_marks_and_run_facts(
    viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    run_id = two_runs[1]
    page = viewer.get(f"/runs/{run_id}")
    assert page.status_code == 200
    statuses = dict(re.findall(r'data-node="([^"]+)" data-status="([^"]+)"', page.text))
    # rows differ between the runs, so no step was a cache hit.
    assert statuses == {s: "completed" for s in ("load", "split", "train", "evaluate")}
    assert f'href="/runs/{run_id}/steps/train"' in page.text
    assert ">train, test<" not in page.text  # split's outputs go to different steps
    assert re.search(r'class="dag-edge-label"[^>]*>model<', page.text)
    assert "<th>C</th><td><code>0.5</code>" in page.text
    assert "git commit" in page.text and "installed packages" in page.text
    assert f'data-live-run="/runs/{run_id}/live.json"' in page.text
    raw = Client().get_pipeline_run(run_id).steps["load"].outputs["raw"]
    assert f'<a href="/artifact-versions/{raw.id}" title="output raw">raw:2</a>' in page.text
    cached = training(rows=40, C=0.5)
    statuses = dict(
        re.findall(
            r'data-node="([^"]+)" data-status="([^"]+)"', viewer.get(f"/runs/{cached.id}").text
        )
    )
    assert set(statuses.values()) == {"cached"}


def test_live_json_reports_run_and_step_statuses(
    viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    state = viewer.get(f"/runs/{two_runs[0]}/live.json").json()
    assert state["status"] == "completed"
    assert {s: v["status"] for s, v in state["steps"].items()} == {
        "load": "completed",
        "split": "completed",
        "train": "completed",
        "evaluate": "completed",
    }
    raw = Client().get_pipeline_run(two_runs[0]).steps["load"].outputs["raw"]
    assert state["steps"]["load"]["outputs"] == [
        {"name": "raw", "label": "raw:1", "href": f"/artifact-versions/{raw.id}"}
    ]
    assert viewer.get("/runs/missing/live.json").status_code == 404


def test_step_page_shows_logs_parameters_links_and_the_cache_explanation(
    viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    run = Client().get_pipeline_run(two_runs[1])
    page = viewer.get(f"/runs/{run.id}/steps/load").text
    assert "loading 40 rows" in page
    raw = run.steps["load"].outputs["raw"]
    assert f'href="/artifact-versions/{raw.id}"' in page
    assert "Not cached: the cache key differs" in page and "<td>rows</td>" in page
    train = viewer.get(f"/runs/{run.id}/steps/train").text
    assert "<th>C</th><td><code>0.5</code>" in train
    missing = viewer.get(f"/runs/{run.id}/steps/nope")
    assert missing.status_code == 404
    assert "has no step &#39;nope&#39;" in missing.text


def _failing_hook() -> None:
    raise RuntimeError("slack is down <b>")


@step(on_success=_failing_hook)
def hooked() -> int:
    return 1


def test_step_page_and_api_show_what_a_hook_raised(live: LiveServer, viewer: httpx.Client) -> None:
    @pipeline
    def with_hook() -> None:
        hooked()

    run = with_hook()
    assert run.status == "completed"
    page = viewer.get(f"/runs/{run.id}/steps/hooked").text
    assert "Hook error" in page
    assert "RuntimeError: slack is down &lt;b&gt;" in page  # escaped, like every error
    assert "_failing_hook" in page
    api = live.get(f"/api/v1/runs/{run.id}/steps/hooked").json()
    assert (api["status"], api["error"]) == ("completed", None)
    assert "RuntimeError: slack is down <b>" in api["hook_error"]


def test_artifact_page_shows_facts_visualizations_and_lineage(
    live: LiveServer, viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    run = Client().get_pipeline_run(two_runs[1])
    raw = run.steps["load"].outputs["raw"]
    page = viewer.get(f"/artifact-versions/{raw.id}").text
    assert raw.content_hash[:16] in page and "pandas" in page
    assert f'src="/artifact-versions/{raw.id}/visualizations/preview"' in page
    assert "sandbox" in page
    lineage = dict(re.findall(r'data-node="([^"]+)" data-status="([^"]+)"', page))
    assert lineage[raw.id] == "focus"
    assert lineage[run.steps["load"].id] == "completed"  # its producer
    assert lineage[run.steps["split"].id] == "completed"  # its consumer
    assert lineage[run.steps["split"].outputs["train"].id] == "artifact"
    preview = viewer.get(f"/artifact-versions/{raw.id}/visualizations/preview")
    assert preview.status_code == 200
    assert "<table" in preview.text and "40 rows" in preview.text
    assert preview.headers["content-security-policy"].startswith("sandbox")
    assert viewer.get(f"/artifact-versions/{raw.id}/visualizations/../../etc").status_code == 404
    assert viewer.get(f"/artifact-versions/{raw.id}/visualizations/nope").status_code == 404
    latest = viewer.get("/artifacts/raw", follow_redirects=False)
    assert latest.headers["location"] == f"/artifact-versions/{raw.id}"
    assert viewer.get("/artifact-versions/nope").status_code == 404


def test_models_pages_show_versions_and_stages(viewer: httpx.Client) -> None:
    with_model = training.with_options(model=Model("churn"))
    first, second = with_model(rows=20), with_model(rows=40)
    client = Client()
    client.get_model_version("churn", 1).promote("staging")
    client.get_model_version("churn", 2).promote("production")
    client.get_model_version("churn", 2).log_metadata({"accuracy": 0.93})
    listing = viewer.get("/models").text
    assert re.search(r"churn</a></td>\s*<td>2</td>\s*<td>2</td>\s*<td>1</td>\s*<td>2</td>", listing)
    page = viewer.get("/models/churn").text
    assert re.search(r'data-version="2">.*?data-status="production"', page, re.S)
    assert re.search(r'data-version="1">.*?data-status="staging"', page, re.S)
    assert "<code>accuracy</code>: 0.93" in page
    model_artifact = second.steps["train"].outputs["model"]
    assert f'href="/artifact-versions/{model_artifact.id}"' in page
    assert first.name in page and second.name in page
    assert "churn:2" in viewer.get(f"/artifact-versions/{model_artifact.id}").text
    assert viewer.get("/models/nope").status_code == 404


def test_compare_page_shows_changed_parameters_and_artifact_diffs(
    viewer: httpx.Client, two_runs: tuple[str, str]
) -> None:
    old, new = two_runs
    ticked = viewer.get("/compare", params=[("run", new), ("run", old)], follow_redirects=True)
    assert ticked.status_code == 200  # redirected to old=...&new=..., older one first
    assert str(ticked.url).endswith(f"/compare?old={old}&new={new}")
    page = ticked.text
    assert re.search(r'data-name="C">.*?<code>1.0</code>.*?<code>0.5</code>', page, re.S)
    assert re.search(r'data-name="rows">.*?<code>20</code>.*?<code>40</code>', page, re.S)
    assert "Rows: 20 → 40" in page  # the DataFrame diff of load.raw
    assert viewer.get("/compare").status_code == 200  # the empty form
    assert viewer.get("/compare", params={"old": old, "new": "nope"}).status_code == 404


def test_user_text_is_escaped(viewer: httpx.Client) -> None:
    # (A name cannot hold '/', so no closing tag: a tag that runs code without one.)
    run = training.with_options(run_name="<img src=x onerror=alert(1)>")(rows=20, C=1.0)
    page = viewer.get(f"/runs/{run.id}").text
    assert "<img src=x onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


@step
def fragile(fail: bool = True) -> Annotated[int, "value"]:
    print("about to fail")
    if fail:
        raise ValueError("the input was bad")
    return 1


@step
def after_fragile(value: int) -> Annotated[int, "doubled"]:
    return value * 2


@pipeline
def breaks(fail: bool = True) -> None:
    after_fragile(fragile(fail=fail))


def test_a_failed_run_shows_the_failed_step_its_error_and_what_did_not_run(
    viewer: httpx.Client,
) -> None:
    with pytest.raises(RunFailedError):
        breaks()
    run = Client().get_pipeline_run("latest")
    page = viewer.get(f"/runs/{run.id}").text
    statuses = dict(re.findall(r'data-node="([^"]+)" data-status="([^"]+)"', page))
    assert statuses == {"fragile": "failed", "after_fragile": "not_run"}
    assert "ValueError: the input was bad" in page
    step_page = viewer.get(f"/runs/{run.id}/steps/fragile").text
    assert "ValueError: the input was bad" in step_page and "about to fail" in step_page
    assert "not run in this run" in viewer.get(f"/runs/{run.id}/steps/after_fragile").text
    failed = viewer.get("/runs", params={"status": "failed"}).text
    assert run.name in failed


@step
def fit_model(C: float = 1.0) -> Annotated[Any, "classifier"]:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pipeline
def sklearn_training(C: float = 1.0) -> None:
    fit_model(C=C)


def test_compare_page_never_loads_a_value_whose_format_runs_code(
    viewer: httpx.Client, monkeypatch
) -> None:
    pytest.importorskip("sklearn")
    old, new = sklearn_training(C=1.0), sklearn_training(C=0.1)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the dashboard loaded a stored model")

    monkeypatch.setattr("mlzen.client.ArtifactVersion.load", refuse)
    page = viewer.get("/compare", params={"old": old.id, "new": new.id}).text
    section = re.search(r'<section class="artifact-diff".*?</section>', page, re.S)
    assert section is not None and "fit_model.classifier" in section.group(0)
    assert "Compared by content hash and metadata only" in section.group(0)
    assert "<h4>Hyperparameters</h4>" not in page


@step
def chatty(lines: int = 30_000) -> Annotated[int, "count"]:
    for number in range(lines):
        print(f"line {number:06d} of the chatty step")
    return lines


@pipeline
def talks(lines: int = 30_000) -> None:
    chatty(lines=lines)


def test_long_logs_show_their_end(viewer: httpx.Client) -> None:
    run = talks()
    page = viewer.get(f"/runs/{run.id}/steps/chatty").text
    assert "line 029999 of the chatty step" in page
    assert "line 000000 of the chatty step" not in page
    assert re.search(r"The first \d+ characters are left out", page)
