"""Sessions kept in the store and the CSRF checks on requests made with their cookie."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from mlzen.config import load_settings
from mlzen.server import auth, sessions
from mlzen.store.metadata import MetadataStore


@pytest.fixture
def store(project: Path) -> MetadataStore:
    return MetadataStore(load_settings().store_url)


def request(headers: dict[str, str], scheme: str = "http", host: str = "team:8237") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in {"host": host, **headers}.items()]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "path": "/logout",
        "query_string": b"",
        "headers": raw,
        "server": (host.split(":")[0], 8237),
    }
    return Request(scope)


def test_a_session_is_found_by_its_token_until_it_ends(store: MetadataStore) -> None:
    user = auth.create_user(store, "ann", "ann-password", "editor")
    token, csrf_token = sessions.start(store, user.id)
    found = sessions.find(store, token)
    assert found == sessions.Session(user.id, "ann", "editor", csrf_token)
    assert token != csrf_token
    assert sessions.find(store, token + "x") is None
    assert sessions.find(store, "") is None
    assert sessions.find(store, "x" * 10_000) is None  # never looked up
    sessions.end(store, token)
    assert sessions.find(store, token) is None


@pytest.mark.parametrize(
    ("headers", "foreign"),
    [
        ({}, False),  # not a browser
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "none"}, False),  # typed into the address bar
        ({"Sec-Fetch-Site": "same-site"}, True),  # another port of the same host
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.test"}, False),
        ({"Origin": "http://team:8237"}, False),
        ({"Origin": "http://team:9999"}, True),
        ({"Origin": "https://team:8237"}, True),
        ({"Origin": "null"}, True),
    ],
)
def test_cross_site_requests_are_told_apart(headers: dict[str, str], foreign: bool) -> None:
    assert (sessions.cross_site(request(headers)) is not None) is foreign


def test_the_token_must_match(store: MetadataStore) -> None:
    same_origin = request({"Sec-Fetch-Site": "same-origin"})
    assert sessions.csrf_problem(same_origin, "secret-token", "secret-token") is None
    for submitted in (None, "", "secret-toke", "secret-token "):
        problem = sessions.csrf_problem(same_origin, "secret-token", submitted)
        assert problem is not None and "CSRF token" in problem
    assert sessions.csrf_problem(same_origin, "", "") is not None  # nothing to match
    cross = request({"Sec-Fetch-Site": "cross-site"})
    problem = sessions.csrf_problem(cross, "secret-token", "secret-token")
    assert problem is not None and "another origin" in problem
