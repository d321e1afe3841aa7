"""Sessions, logins and roles on the team server (issue 10, F), over real HTTP.

Logging out ends the session in the store, so a copied cookie stops working; logins are
throttled per user and per address, in the store, so every server process over it
counts the same guesses; state-changing requests made with the cookie need the
session's CSRF token and must come from this origin; and a viewer's ``mlzen deploy``
is refused before anything starts.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlzen.deployers.deployments import list_deployments
from mlzen.deployers.local import SERVING_MODULE, is_service_process
from mlzen.server import auth, throttle
from mlzen.server.app import create_app
from mlzen.server.sessions import CSRF_HEADER, LOGIN_COOKIE, SESSION_COOKIE
from mlzen.store.remote import close_connections
from tests.cli import run_main
from tests.integration.test_remote import TeamServer, _make_server, login
from tests.integration.test_serving import churn_training as train_a_churn_model
from tests.live_server import start_server, stop_server
from tests.unit.server.conftest import PASSWORDS, LiveServer, backend, live
from tests.unit.server.pipelines_for_server import churn_training, training

__all__ = ["backend", "live"]  # fixtures, used by name

ERROR_KEYS = {"error", "detail", "fields"}


def api_login(client: httpx.Client, role: str, password: str | None = None) -> httpx.Response:
    return client.post(
        "/api/v1/auth/login",
        json={"username": role, "password": password or PASSWORDS[role]},
    )


def form_login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """Log in through the dashboard's form, as a browser does: fetch it, post it back."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text
    form = {"name": name, "password": password, "next": "/runs", "csrf_token": token[1]}
    return client.post("/login", data=form, headers={"Sec-Fetch-Site": "same-origin"})


def _everything_stored(live: LiveServer) -> str:
    from sqlalchemy import select

    from mlzen.store import tables as t

    with live.app.state.store.read() as connection:
        return " ".join(
            str(value)
            for table in t.metadata.sorted_tables
            for row in connection.execute(select(table)).all()
            for value in row
        )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found[1]


# -- logout ------------------------------------------------------------------------------


def test_logout_ends_the_session_so_a_copied_cookie_is_refused(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as browser:
        login = api_login(browser, "editor")
        assert login.status_code == 200
        copied = browser.cookies[SESSION_COOKIE]
        assert copied not in _everything_stored(live)  # only its SHA-256 is kept
        headers = {CSRF_HEADER: login.json().get("csrf_token", "")}
        assert browser.post("/api/v1/auth/logout", headers=headers).status_code == 200
    with httpx.Client(base_url=live.url, cookies={SESSION_COOKIE: copied}) as replay:
        assert replay.get("/api/v1/auth/me").status_code == 401
        assert replay.get("/runs", follow_redirects=False).status_code == 303

    # The same through the dashboard's form and its log-out button.
    with httpx.Client(base_url=live.url) as browser:
        assert form_login(browser, "viewer", PASSWORDS["viewer"]).status_code == 303
        copied = browser.cookies[SESSION_COOKIE]
        runs = browser.get("/runs")
        assert runs.status_code == 200
        out = browser.post(
            "/logout", data={"csrf_token": csrf_of(runs.text)}, follow_redirects=False
        )
        assert out.status_code == 303
    with httpx.Client(base_url=live.url, cookies={SESSION_COOKIE: copied}) as replay:
        assert replay.get("/api/v1/auth/me").status_code == 401


def test_a_new_password_or_a_deleted_user_ends_their_sessions(live: LiveServer) -> None:
    from mlzen.store import users

    store = live.app.state.store
    with httpx.Client(base_url=live.url) as first, httpx.Client(base_url=live.url) as second:
        api_login(first, "editor")
        api_login(second, "editor")
        assert first.get("/api/v1/auth/me").status_code == 200
        auth.set_password(store, "editor", "a-new-password")
        assert first.get("/api/v1/auth/me").status_code == 401
        assert second.get("/api/v1/auth/me").status_code == 401
        assert api_login(first, "editor").status_code == 401
        assert api_login(first, "editor", "a-new-password").status_code == 200
        users.delete_user(store, "editor")
        assert first.get("/api/v1/auth/me").status_code == 401


# -- login throttling -------------------------------------------------------------------


def test_wrong_passwords_for_a_user_lock_its_logins_for_a_while(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as attacker:
        for attempt in range(throttle.USER_ATTEMPTS):
            wrong = api_login(attacker, "admin", f"guess-{attempt}")
            assert wrong.status_code == 401, attempt
        locked = api_login(attacker, "admin", "one-more-guess")
        assert locked.status_code == 429
        assert set(locked.json()) == ERROR_KEYS
        assert 0 < int(locked.headers["Retry-After"]) <= throttle.WINDOW.total_seconds()
        # The right password does not get in either while the lock holds, by the API or
        # by the dashboard's form.
        assert api_login(attacker, "admin").status_code == 429
        form = form_login(attacker, "admin", PASSWORDS["admin"])
        assert form.status_code == 429
        assert "Retry-After" in form.headers
        assert SESSION_COOKIE not in attacker.cookies
        # Another user is not locked out by it.
        assert api_login(attacker, "viewer").status_code == 200


def test_logins_from_one_address_are_limited_across_user_names(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as attacker:
        for attempt in range(throttle.ADDRESS_ATTEMPTS):
            name = f"nobody-{attempt}"
            assert api_login(attacker, name, "guess-guess").status_code == 401, attempt
        assert api_login(attacker, "editor").status_code == 429


@pytest.fixture
def two_servers(live: LiveServer) -> Iterator[tuple[str, str]]:
    """A second server process's worth of app over the same store, on its own port."""
    other = create_app()
    assert other.state.store.url == live.app.state.store.url
    server, thread, url = start_server(other)
    try:
        yield live.url, url
    finally:
        stop_server(server, thread)


def test_every_server_over_one_store_counts_the_same_attempts(
    two_servers: tuple[str, str],
) -> None:
    first, second = two_servers
    for attempt in range(throttle.USER_ATTEMPTS):
        url = first if attempt % 2 else second
        with httpx.Client(base_url=url) as client:
            assert api_login(client, "editor", f"guess-{attempt}").status_code == 401
    for url in two_servers:
        with httpx.Client(base_url=url) as client:
            assert api_login(client, "editor").status_code == 429


# -- CSRF -------------------------------------------------------------------------------


def test_changes_made_with_the_cookie_need_the_session_token(live: LiveServer) -> None:
    training(rows=8)
    with httpx.Client(base_url=live.url) as browser:
        token = api_login(browser, "editor").json().get("csrf_token", "")
        run = browser.get("/api/v1/runs").json()["items"][0]["id"]
        refused = browser.delete(f"/api/v1/runs/{run}")
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        forged = browser.delete(f"/api/v1/runs/{run}", headers={CSRF_HEADER: "not-the-token"})
        assert forged.status_code == 403
        cross_site = browser.delete(
            f"/api/v1/runs/{run}", headers={CSRF_HEADER: token, "Sec-Fetch-Site": "same-site"}
        )
        assert cross_site.status_code == 403
        other_origin = browser.delete(
            f"/api/v1/runs/{run}", headers={CSRF_HEADER: token, "Origin": "http://evil.test"}
        )
        assert other_origin.status_code == 403
        assert browser.get(f"/api/v1/runs/{run}").status_code == 200  # nothing deleted
        deleted = browser.delete(f"/api/v1/runs/{run}", headers={CSRF_HEADER: token})
        assert deleted.status_code == 200
    # An API key is no ambient credential: no token needed with it.
    assert live.get("/api/v1/auth/me", role="editor").status_code == 200


def test_dashboard_forms_refuse_posts_that_lack_their_token(live: LiveServer) -> None:
    training(rows=8)
    churn_training(C=0.5)
    with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
        # Login: without the form's pre-session token, or from another site: refused.
        no_form = {"name": "editor", "password": PASSWORDS["editor"]}
        assert browser.post("/login", data=no_form).status_code == 403
        page = browser.get("/login")
        assert LOGIN_COOKIE in browser.cookies
        form = {**no_form, "csrf_token": csrf_of(page.text)}
        cross_site = browser.post("/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        assert SESSION_COOKIE not in browser.cookies
        assert browser.post("/login", data=form).status_code == 303
        assert SESSION_COOKIE in browser.cookies

        run = browser.get("/api/v1/runs").json()["items"][-1]["id"]
        token = csrf_of(browser.get(f"/runs/{run}").text)
        promote = "/models/churn/versions/1/promote"
        for data in ({"stage": "production"}, {"stage": "production", "csrf_token": "x" * 43}):
            assert browser.post(promote, data=data).status_code == 403
            assert browser.post(f"/runs/{run}/delete", data=data).status_code == 403
            assert browser.post("/logout", data=data).status_code == 403
        assert browser.get("/api/v1/models/churn/versions/1").json()["stage"] == "none"
        assert browser.get(f"/api/v1/runs/{run}").status_code == 200
        assert browser.get("/api/v1/auth/me").status_code == 200

        # With the token, from this origin, the same forms do their work.
        moved = browser.post(promote, data={"stage": "production", "csrf_token": token})
        assert moved.status_code == 303
        assert browser.get("/api/v1/models/churn/versions/1").json()["stage"] == "production"
        deleted = browser.post(f"/runs/{run}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert browser.get(f"/api/v1/runs/{run}").status_code == 404
        assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
        assert browser.get("/api/v1/auth/me").status_code == 401


def test_a_viewer_sees_no_change_forms_and_cannot_post_them(live: LiveServer) -> None:
    training(rows=8)
    churn_training(C=0.5)
    with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
        assert form_login(browser, "viewer", PASSWORDS["viewer"]).status_code == 303
        run = browser.get("/api/v1/runs").json()["items"][0]["id"]
        run_page = browser.get(f"/runs/{run}").text
        assert "/delete" not in run_page
        assert "/promote" not in browser.get("/models/churn").text
        token = csrf_of(run_page)
        refused = browser.post(f"/runs/{run}/delete", data={"csrf_token": token})
        assert refused.status_code == 403
        assert "editor" in refused.text
        assert browser.get(f"/api/v1/runs/{run}").status_code == 200


def test_the_login_form_is_not_a_redirect_to_elsewhere(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, follow_redirects=False) as browser:
        page = browser.get("/login")
        form = {
            "name": "viewer",
            "password": PASSWORDS["viewer"],
            "next": "//evil.test/",
            "csrf_token": csrf_of(page.text),
        }
        assert browser.post("/login", data=form).headers["location"] == "/runs"


# -- deploying as a viewer ---------------------------------------------------------------


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[TeamServer]:
    """A team server process over SQLite, with an editor's and a viewer's key."""
    server = _make_server(tmp_path / "team", "sqlite")
    server.start()
    try:
        yield server
    finally:
        close_connections()
        server.stop()


def test_a_viewer_deploy_is_refused_before_any_service_starts(
    team_server: TeamServer, project: Path
) -> None:
    """A project logged in to a team server with a viewer's key: ``mlzen deploy`` says
    why and starts nothing; an editor's deploy is recorded there and stoppable."""
    login(team_server, "editor")
    train_a_churn_model()
    login(team_server, "viewer")
    try:
        code, _, err = run_main("deploy", "churn:latest", "--name", "by-viewer")
        assert code == 2, err
        assert "needs the 'editor' role" in err
        assert "viewer" in err
        assert not services_named("by-viewer")
        assert not (project / ".mlzen" / "deployments" / "by-viewer.log").exists()
    finally:
        kill_services_named("by-viewer")

    login(team_server, "editor")
    try:
        code, _, err = run_main("deploy", "churn:latest", "--name", "by-editor")
        assert code == 0, err
        listed = {d.name: d for d in list_deployments()}
        assert listed["by-editor"].status == "running"
        assert services_named("by-editor") == [listed["by-editor"].pid]
        login(team_server, "viewer")
        code, _, err = run_main("deployments", "stop", "by-editor")
        assert code == 2
        assert "needs the 'editor' role" in err
        assert services_named("by-editor")  # refused, so left running: still recorded
        login(team_server, "editor")
        assert run_main("deployments", "stop", "by-editor")[0] == 0
        assert not services_named("by-editor")
    finally:
        kill_services_named("by-editor")


def services_named(name: str) -> list[int]:
    """Pids of live model services of deployment ``name`` on this machine."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        args = process.info["cmdline"] or []
        if SERVING_MODULE in args and is_service_process(process.info["pid"], name):
            found.append(process.info["pid"])
    return found


def kill_services_named(name: str) -> None:
    for pid in services_named(name):
        os.kill(pid, signal.SIGKILL)
