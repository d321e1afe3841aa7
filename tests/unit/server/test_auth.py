"""Access control over real HTTP: every route, the session cookie, hashed secrets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mlzen.server import auth
from mlzen.store import tables as t
from tests.unit.server.conftest import PASSWORDS, LiveServer

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Answer without credentials, by design.
PUBLIC = {
    ("GET", "/health"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/login"),
    ("POST", "/login"),
}
# POST routes every role may call: login and logout.
FOR_EVERY_ROLE = re.compile(r"^/api/v1/auth/|^/login$|^/logout$")
STORE_PREFIX = "/api/v1/store/"


def is_write(method: str, path: str) -> bool:
    """Whether a route changes something (and so needs more than the viewer role).

    The remote store's operations all travel as POST; each declares its least role.
    """
    from mlzen.store.operations import OPERATIONS

    if method not in WRITE_METHODS or FOR_EVERY_ROLE.search(path):
        return False
    if path.startswith(STORE_PREFIX):
        return OPERATIONS[path.removeprefix(STORE_PREFIX)].role != "viewer"
    return True


def all_routes(app: Any) -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every route, including those of included routers."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        found = (
            [(c.path, c.original_route) for c in contexts()]
            if contexts
            else [(getattr(route, "path", ""), route)]
        )
        for path, original in found:
            for method in sorted(getattr(original, "methods", None) or {"GET"}):
                if method != "HEAD":
                    yield method, path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_the_route_walk_sees_every_group_of_routes(live: LiveServer) -> None:
    paths = {path for _, path in all_routes(live.app)}
    assert {"/api/v1/runs", "/api/v1/runs/{run}", "/docs", "/openapi.json"} <= paths
    assert len(paths) > 20


def test_every_route_refuses_a_caller_without_credentials(live: LiveServer) -> None:
    checked = 0
    with httpx.Client(base_url=live.url, follow_redirects=False) as client:
        for method, path in all_routes(live.app):
            if (method, path) in PUBLIC or path.startswith("/static"):
                continue
            response = client.request(method, concrete(path))
            redirected_to_login = response.status_code in (302, 303, 307) and response.headers[
                "location"
            ].split("?")[0].endswith("/login")
            assert response.status_code == 401 or (
                redirected_to_login and not path.startswith("/api/")
            ), f"{method} {path} answered {response.status_code} without credentials"
            checked += 1
            bad_key = client.request(
                method, concrete(path), headers={"Authorization": "Bearer mlzen_notarealkey123"}
            )
            assert bad_key.status_code in (401, 302, 303, 307), f"{method} {path} took a bad key"
    assert checked > 20


def test_a_viewer_cannot_use_any_write_route(live: LiveServer) -> None:
    writes = [(method, path) for method, path in all_routes(live.app) if is_write(method, path)]
    assert ("DELETE", "/api/v1/runs/{run}") in writes
    with live.client("viewer") as viewer:
        for method, path in writes:
            response = viewer.request(method, concrete(path), json={})
            assert response.status_code == 403, f"viewer got {response.status_code} on {path}"


def test_login_sets_a_safe_session_cookie_that_works_until_logout(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as browser:
        wrong = browser.post(
            "/api/v1/auth/login", json={"username": "viewer", "password": "nope-nope"}
        )
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        login = browser.post(
            "/api/v1/auth/login", json={"username": "editor", "password": PASSWORDS["editor"]}
        )
        assert login.status_code == 200
        assert login.json()["user"]["role"] == "editor"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{auth.SESSION_COOKIE}=")
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert PASSWORDS["editor"] not in cookie
        assert browser.get("/api/v1/auth/me").json()["name"] == "editor"
        assert browser.get("/api/v1/runs").status_code == 200
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        assert browser.post("/api/v1/auth/logout", headers=headers).status_code == 200
        assert browser.get("/api/v1/auth/me").status_code == 401


def test_a_forged_or_tampered_session_cookie_is_refused(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as browser:
        browser.post(
            "/api/v1/auth/login", json={"username": "viewer", "password": PASSWORDS["viewer"]}
        )
        token = browser.cookies[auth.SESSION_COOKIE]
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character changed
        token + "x",
        token[:20],
        hashlib.sha256(token.encode()).hexdigest(),  # the row's id is not a token
        "x" * 5000,
        "garbage",
    ]
    for value in forged:
        with httpx.Client(base_url=live.url, cookies={auth.SESSION_COOKIE: value}) as client:
            assert client.get("/api/v1/auth/me").status_code == 401, value
    with httpx.Client(base_url=live.url, cookies={auth.SESSION_COOKIE: token}) as client:
        assert client.get("/api/v1/auth/me").json()["name"] == "viewer"


def test_deleting_a_user_ends_their_sessions_and_keys(live: LiveServer) -> None:
    from mlzen.store import users

    with httpx.Client(base_url=live.url) as browser:
        browser.post(
            "/api/v1/auth/login", json={"username": "editor", "password": PASSWORDS["editor"]}
        )
        assert browser.get("/api/v1/auth/me").status_code == 200
        users.delete_user(live.app.state.store, "editor")
        assert browser.get("/api/v1/auth/me").status_code == 401
    assert live.get("/api/v1/auth/me", role="editor").status_code == 401


def test_a_revoked_key_stops_working(live: LiveServer) -> None:
    from mlzen.store import users

    assert live.get("/api/v1/auth/me", role="viewer").status_code == 200
    users.revoke_api_key(live.app.state.store, live.keys["viewer"][: auth.PREFIX_LENGTH])
    assert live.get("/api/v1/auth/me", role="viewer").status_code == 401


def test_passwords_and_keys_are_stored_only_as_hashes(live: LiveServer) -> None:
    live.get("/api/v1/auth/me", role="admin")  # records last use
    with live.app.state.store.read() as connection:
        user_rows = connection.execute(select(t.users)).mappings().all()
        key_rows = connection.execute(select(t.api_keys)).mappings().all()
        every_value = " ".join(
            str(v)
            for table in t.metadata.sorted_tables
            for row in connection.execute(select(table)).all()
            for v in row
        )
    assert len(user_rows) == 3
    for row in user_rows:
        assert row["password_hash"].startswith("$argon2id$")
        assert PASSWORDS[row["name"]] not in row["password_hash"]
    assert len(key_rows) == 3
    for role, key in live.keys.items():
        assert key.startswith("mlzen_")
        assert key not in every_value, f"{role}'s key is in the database"
        row = next(r for r in key_rows if r["name"] == f"{role}-key")
        assert row["prefix"] == key[: auth.PREFIX_LENGTH]
        assert row["key_hash"] == auth.hash_api_key(key)
    for password in PASSWORDS.values():
        assert password not in every_value
    admin_key = next(r for r in key_rows if r["name"] == "admin-key")
    assert admin_key["last_used_at"] is not None


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_each_role_reads(live: LiveServer, role: str) -> None:
    me = live.get("/api/v1/auth/me", role=role).json()
    assert me["role"] == role
    assert live.get("/api/v1/runs", role=role).status_code == 200
    assert live.get("/openapi.json", role=role).json()["info"]["title"] == "mlzen server"


def test_the_session_cookie_is_secure_over_https(live: LiveServer) -> None:
    import asyncio

    async def login_over_tls() -> httpx.Response:
        # The scheme a TLS-terminating proxy reports reaches the app as the ASGI scope's.
        transport = httpx.ASGITransport(app=live.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://mlzen.example") as tls:
            return await tls.post(
                "/api/v1/auth/login", json={"username": "viewer", "password": PASSWORDS["viewer"]}
            )

    login = asyncio.run(login_over_tls())
    assert login.status_code == 200
    assert "; secure" in login.headers["set-cookie"].lower()
    with httpx.Client(base_url=live.url) as plain:
        cookie = plain.post(
            "/api/v1/auth/login", json={"username": "viewer", "password": PASSWORDS["viewer"]}
        ).headers["set-cookie"]
    assert "secure" not in cookie.lower()
