"""Server users' sessions and login attempts in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from mlzen.config import load_settings
from mlzen.store import tables as t
from mlzen.store import users
from mlzen.store.metadata import MetadataStore, utcnow

WINDOW = timedelta(minutes=5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, project: Path) -> MetadataStore:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return MetadataStore(load_settings().store_url)


def _user(store: MetadataStore, name: str = "ann") -> str:
    return users.create_user(store, name=name, password_hash="$argon2id$x", role="editor")


def test_a_session_lives_until_deleted_or_expired(store: MetadataStore) -> None:
    user_id = _user(store)
    later = utcnow() + timedelta(hours=1)
    users.create_session(
        store, session_id="a" * 64, user_id=user_id, csrf_token="c", expires_at=later
    )
    found = users.session_with_user(store, "a" * 64)
    assert found is not None
    assert (found["user_name"], found["role"], found["csrf_token"]) == ("ann", "editor", "c")
    assert users.session_with_user(store, "b" * 64) is None
    users.delete_session(store, "a" * 64)
    assert users.session_with_user(store, "a" * 64) is None
    users.delete_session(store, "a" * 64)  # ending it twice is fine

    past = utcnow() - timedelta(seconds=1)
    users.create_session(
        store, session_id="e" * 64, user_id=user_id, csrf_token="c", expires_at=past
    )
    assert users.session_with_user(store, "e" * 64) is None
    # Starting another session clears the expired ones out of the table.
    users.create_session(
        store, session_id="f" * 64, user_id=user_id, csrf_token="c", expires_at=later
    )
    with store.read() as connection:
        ids = set(connection.execute(t.server_sessions.select()).scalars())
    assert ids == {"f" * 64}


def test_a_new_password_and_deleting_the_user_end_their_sessions(store: MetadataStore) -> None:
    ann, bob = _user(store, "ann"), _user(store, "bob")
    later = utcnow() + timedelta(hours=1)
    for session_id, user_id in (("1" * 64, ann), ("2" * 64, ann), ("3" * 64, bob)):
        users.create_session(
            store, session_id=session_id, user_id=user_id, csrf_token="c", expires_at=later
        )
    users.set_password_hash(store, "ann", "$argon2id$new")
    assert users.user_row(store, name="ann")["password_hash"] == "$argon2id$new"  # type: ignore[index]
    assert users.session_with_user(store, "1" * 64) is None
    assert users.session_with_user(store, "2" * 64) is None
    assert users.session_with_user(store, "3" * 64) is not None
    users.delete_user(store, "bob")
    assert users.session_with_user(store, "3" * 64) is None


def test_attempts_are_counted_per_key_until_the_window_ends(store: MetadataStore) -> None:
    limits = {"user": 2, "address": 3}
    assert users.take_login_attempt(store, limits, WINDOW) is None
    assert users.take_login_attempt(store, limits, WINDOW) is None
    wait = users.take_login_attempt(store, limits, WINDOW)
    assert wait is not None
    assert timedelta(0) < wait <= WINDOW
    # A refused attempt is not counted: the address has one left for another user.
    assert users.take_login_attempt(store, {"other": 2, "address": 3}, WINDOW) is None
    assert users.take_login_attempt(store, {"other": 2, "address": 3}, WINDOW) is not None

    # Once the window has passed, counting starts again.
    with store.write() as connection:
        connection.execute(
            update(t.login_attempts).values(window_start=utcnow() - WINDOW - timedelta(seconds=1))
        )
    assert users.take_login_attempt(store, limits, WINDOW) is None


def test_a_success_forgets_the_user_and_gives_the_address_one_back(
    store: MetadataStore,
) -> None:
    limits = {"user": 2, "address": 2}
    users.take_login_attempt(store, limits, WINDOW)
    users.take_login_attempt(store, limits, WINDOW)
    assert users.take_login_attempt(store, limits, WINDOW) is not None
    users.give_back_login_attempt(store, forget="user", release="address")
    assert users.take_login_attempt(store, limits, WINDOW) is None
    assert users.take_login_attempt(store, limits, WINDOW) is not None


def test_attempts_sent_at_once_never_exceed_the_limit(store: MetadataStore) -> None:
    limits = {"user": 5, "address": 100}
    allowed: list[bool] = []
    barrier = threading.Barrier(12)

    def attempt() -> None:
        barrier.wait()
        allowed.append(users.take_login_attempt(store, limits, WINDOW) is None)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 5
