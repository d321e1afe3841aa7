"""Two test suites on one PostgreSQL server never share a database (issue 10, H)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL


def test_each_session_uses_a_database_of_its_own() -> None:
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    configured = make_url(os.environ["MLZEN_TEST_POSTGRES_URL"]).database
    own = make_url(POSTGRES_URL).database
    assert own != configured
    assert own.startswith(f"mlzen_test_{os.getpid()}_")
