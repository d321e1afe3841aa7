"""Login throttling over a real store: counted before the password is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlzen.config import load_settings
from mlzen.errors import TooManyAttemptsError
from mlzen.server import auth, throttle
from mlzen.store.metadata import MetadataStore


@pytest.fixture
def store(project: Path) -> MetadataStore:
    store = MetadataStore(load_settings().store_url)
    auth.create_user(store, "ann", "ann-password", "editor")
    return store


def test_a_user_name_gets_a_few_attempts_then_none(store: MetadataStore) -> None:
    for _ in range(throttle.USER_ATTEMPTS - 1):
        assert throttle.login(store, "ann", "wrong-password", "10.0.0.1") is None
    # A success forgets the user's failures.
    assert throttle.login(store, "ann", "ann-password", "10.0.0.1") is not None
    for _ in range(throttle.USER_ATTEMPTS):
        assert throttle.login(store, "ann", "wrong-password", "10.0.0.2") is None
    with pytest.raises(TooManyAttemptsError) as info:
        throttle.login(store, "ann", "ann-password", "10.0.0.3")  # right, but locked
    assert 0 < info.value.retry_after <= throttle.WINDOW.total_seconds()
    assert "Try again in" in info.value.message


def test_an_address_gets_a_few_attempts_across_user_names(store: MetadataStore) -> None:
    for number in range(throttle.ADDRESS_ATTEMPTS):
        assert throttle.login(store, f"guess-{number}", "password", "10.0.0.9") is None
    with pytest.raises(TooManyAttemptsError):
        throttle.login(store, "ann", "ann-password", "10.0.0.9")
    assert throttle.login(store, "ann", "ann-password", "10.0.0.10") is not None


def test_names_and_addresses_are_stored_only_as_hashes(store: MetadataStore) -> None:
    from sqlalchemy import select

    from mlzen.store import tables as t

    throttle.login(store, "someone-secret", "password", "203.0.113.7")
    with store.read() as connection:
        keys = list(connection.execute(select(t.login_attempts.c.key)).scalars())
    assert len(keys) == 2
    assert all(len(key) == 64 for key in keys)
    assert not any("someone" in key or "203.0" in key for key in keys)
