"""The dashboard in a real browser: Playwright drives Debian's chromium against a real
uvicorn server on 127.0.0.1 while a real pipeline runs.

The middle step of the pipeline waits on an event the test sets, so the test sees the
run appear and go live: the runs page and the DAG change state without a page reload.
A second test serves a hostile page from another port of 127.0.0.1 (same site, another
origin) whose forms post to the dashboard: each post is refused, while the dashboard's
own forms (log in, promote, delete, log out) work.
Screenshots go to ``$MLZEN_SCREENSHOTS`` (default: a folder under the system temp dir);
``MLZEN_SCREENSHOTS=docs/images`` refreshes the ones the README shows.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pytest

from mlzen import Model, pipeline, step
from mlzen.server import auth
from mlzen.server.app import create_app
from tests.live_server import start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
IMAGES = Path(
    os.environ.get("MLZEN_SCREENSHOTS") or Path(tempfile.gettempdir()) / "mlzen-screenshots"
)
ADMIN, PASSWORD = "admin", "admin-password"
WAIT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
)

gate = threading.Event()


@step
def load(rows: int = 12) -> Annotated[pd.DataFrame, "customers"]:
    print(f"loaded {rows} customers from the warehouse")
    return pd.DataFrame(
        {"customer": [f"c{i:03d}" for i in range(rows)], "spend": [i * 3.5 for i in range(rows)]}
    )


@step
def profile(customers: pd.DataFrame) -> Annotated[dict, "profile"]:
    return {"rows": len(customers), "mean_spend": float(customers["spend"].mean())}


@step
def train(customers: pd.DataFrame, C: float = 1.0) -> Annotated[dict, "model"]:
    print("training is waiting for the test to let it finish")
    if not gate.wait(timeout=120):
        raise RuntimeError("the test never opened the gate")
    return {"C": C, "weight": float(customers["spend"].sum()) * C}


@step
def evaluate(model: dict, profile: dict) -> Annotated[float, "score"]:
    return model["weight"] / max(profile["rows"], 1)


@pipeline
def churn(rows: int = 12, C: float = 1.0) -> None:
    customers = load(rows=rows)
    evaluate(train(customers, C=C), profile(customers))


@pytest.fixture
def server(project: Path) -> Iterator[str]:
    app = create_app()
    auth.create_user(app.state.store, ADMIN, PASSWORD, "admin")
    uvicorn_server, thread, url = start_server(app)
    try:
        yield url
    finally:
        stop_server(uvicorn_server, thread)


@pytest.fixture
def page(server: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 860})
            context.set_default_timeout(WAIT_MS)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def _shot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=True)


def _node(page: Any, step_id: str) -> Any:
    return page.locator(f'#run-dag .dag-node[data-node="{step_id}"]')


def test_a_run_goes_live_in_the_dashboard_then_its_steps_artifacts_and_a_comparison(
    page: Any,
) -> None:
    from playwright.sync_api import expect

    # Log in through the form; the runs page is where it lands.
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns$"))
    page.fill("input[name=name]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Runs")
    page.evaluate("window.__sameDocument = true")

    # Start a run whose train step waits; it appears on the open runs page by itself.
    gate.clear()
    finished: dict[str, Any] = {}

    def run_in_background() -> None:
        try:
            finished["run"] = churn.with_options(run_name="churn-live")(rows=12, C=1.0)
        except BaseException as exc:
            finished["error"] = exc

    driver = threading.Thread(target=run_in_background, daemon=True)
    driver.start()
    try:
        row = page.locator("#run-rows tr", has_text="churn-live")
        expect(row.locator(".status")).to_have_attribute("data-status", "running")
        assert page.evaluate("window.__sameDocument") is True  # no reload happened

        # The run page: the DAG shows the waiting step running, the finished one done.
        row.locator("a.run-link").click()
        expect(page.locator("h1")).to_contain_text("churn-live")
        expect(_node(page, "load")).to_have_attribute("data-status", "completed")
        expect(_node(page, "profile")).to_have_attribute("data-status", "completed")
        expect(_node(page, "train")).to_have_attribute("data-status", "running")
        expect(_node(page, "evaluate")).to_have_attribute("data-status", "pending")
        expect(page.locator("[data-run-status]")).to_have_attribute("data-status", "running")
        _shot(page, "dashboard-run-live.png")
        page.evaluate("window.__sameDocument = true")

        # The running step's own page, in a second tab, waits for the step to end.
        step_tab = page.context.new_page()
        step_tab.goto(page.url + "/steps/train")
        expect(step_tab.locator("h1 .status")).to_have_attribute("data-status", "running")
        expect(step_tab.locator("main")).to_contain_text("recorded when the step finishes")
    finally:
        gate.set()
        driver.join(timeout=120)
    assert "error" not in finished, finished.get("error")

    # Without a reload, every node and the run turn completed.
    for step_id in ("load", "profile", "train", "evaluate"):
        expect(_node(page, step_id)).to_have_attribute("data-status", "completed")
    expect(page.locator("[data-run-status]")).to_have_attribute("data-status", "completed")
    expect(page.locator('tr[data-step="train"] .status')).to_have_text("completed")
    expect(page.locator('tr[data-step="evaluate"] [data-step-field="attempts"]')).to_have_text("1")
    expect(page.locator('tr[data-step="train"] [data-step-outputs] a')).to_have_text("model:1")
    assert page.evaluate("window.__sameDocument") is True
    _shot(page, "dashboard-run.png")
    # The step's tab reloaded itself once the step ended: its logs are there now.
    expect(step_tab.locator("#step-logs")).to_contain_text("training is waiting for the test")
    expect(step_tab.locator("h1 .status")).to_have_attribute("data-status", "completed")
    step_tab.close()

    # A step's page shows what it printed; its output links to the artifact.
    _node(page, "load").click()
    expect(page.locator("h1")).to_contain_text("load")
    expect(page.locator("#step-logs")).to_contain_text("loaded 12 customers from the warehouse")
    _shot(page, "dashboard-step.png")

    # The artifact page previews the DataFrame in a table and draws its lineage.
    page.locator("a", has_text="customers:1").first.click()
    expect(page.locator("h1")).to_contain_text("customers")
    preview = page.frame_locator('iframe[title="preview"]')
    expect(preview.locator("table")).to_contain_text("c011")
    expect(page.locator("img[alt^='histograms']")).to_be_visible()
    run_id = finished["run"].id
    expect(
        page.locator(f'.dag-node[data-node="{finished["run"].steps["train"].id}"]')
    ).to_have_attribute("data-status", "completed")
    _shot(page, "dashboard-artifact.png")

    # A second run with another C; tick both on the runs page and compare them.
    gate.set()
    second = churn.with_options(run_name="churn-second")(rows=12, C=0.25)
    page.goto("/runs")
    page.locator(f'input[name=run][value="{run_id}"]').check()
    page.locator(f'input[name=run][value="{second.id}"]').check()
    _shot(page, "dashboard-runs.png")
    page.click("#compare-selected")
    expect(page.locator("h1")).to_have_text("Compare two runs")
    changed = page.locator('table.changes tr[data-name="C"]').first
    expect(changed).to_contain_text("1.0")
    expect(changed).to_contain_text("0.25")
    expect(page.locator("section.artifact-diff", has_text="train.model")).to_contain_text("$.C")
    _shot(page, "dashboard-compare.png")


# -- forms: the dashboard's own work, another origin's are refused ------------------------


@step
def fit(customers: pd.DataFrame) -> Annotated[dict, "model"]:
    return {"weight": float(customers["spend"].mean())}


@pipeline(model=Model(name="scorer"))
def scoring(rows: int = 6) -> None:
    fit(load(rows=rows))


def _hostile_page(target: str, fields: dict[str, str]) -> bytes:
    """A page that posts a form to ``target`` as soon as it loads."""
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<!DOCTYPE html><html><body><form id="f" method="post" action="{target}">'
        f"{inputs}</form><script>document.getElementById('f').submit()</script></body></html>"
    ).encode()


@pytest.fixture
def hostile_site(server: str) -> Iterator[str]:
    """Another origin on this machine (same host, another port): its pages post forms to
    the dashboard, hoping the browser sends the session cookie along."""
    pages = {
        "/promote": _hostile_page(
            f"{server}/models/scorer/versions/1/promote", {"stage": "production"}
        ),
        "/delete": _hostile_page(f"{server}/runs/scoring-first/delete", {}),
        "/logout": _hostile_page(f"{server}/logout", {}),
        "/login": _hostile_page(
            f"{server}/login", {"name": ADMIN, "password": PASSWORD, "next": "/runs"}
        ),
    }

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, b"not here")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=30)


def _log_in(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.fill("input[name=name]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Runs")


def test_forms_work_from_the_dashboard_and_are_refused_from_another_origin(
    page: Any, server: str, hostile_site: str
) -> None:
    from playwright.sync_api import expect

    scoring.with_options(run_name="scoring-first")()
    scoring.with_options(run_name="scoring-second")(rows=8)

    # Logged out, a hostile page cannot log the browser in (to an account of its choosing).
    page.goto(f"{hostile_site}/login")
    expect(page.locator("h1")).to_have_text("Log in to mlzen")
    expect(page.locator(".error")).to_contain_text("another origin")
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns$"))

    _log_in(page)
    # Logged in, the hostile pages' posts carry the cookie but not the session's token,
    # and the browser says where they come from: each is refused, nothing changes.
    for attack in ("/promote", "/delete", "/logout"):
        page.goto(f"{hostile_site}{attack}")
        expect(page.locator("h1")).to_have_text("Refused")
    page.goto("/models/scorer")
    expect(page.locator('tr[data-version="1"] .status')).to_have_attribute("data-status", "none")
    page.goto("/runs")
    expect(page.locator("h1")).to_have_text("Runs")  # still logged in
    expect(page.locator("#run-rows")).to_contain_text("scoring-first")

    # The dashboard's own forms do their work.
    page.goto("/models/scorer")
    row = page.locator('tr[data-version="1"]')
    row.locator("select[name=stage]").select_option("production")
    row.locator("button[type=submit]").click()
    expect(page.locator('tr[data-version="1"] .status')).to_have_attribute(
        "data-status", "production"
    )
    page.goto("/runs/scoring-first")
    page.locator("form.delete-run button").click()
    expect(page.locator("h1")).to_have_text("Runs")
    expect(page.locator("#run-rows")).not_to_contain_text("scoring-first")
    expect(page.locator("#run-rows")).to_contain_text("scoring-second")

    # Logging out ends the session: the cookie the browser had no longer works.
    cookie = next(c for c in page.context.cookies() if c["name"] == "mlzen_session")
    page.click("form.who button")
    expect(page.locator("h1")).to_have_text("Log in to mlzen")
    page.context.add_cookies([cookie])
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns$"))
