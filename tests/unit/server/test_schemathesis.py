"""Property-based requests from the server's own OpenAPI spec: no answer is a 5xx.

Schemathesis generates requests (valid and invalid) for every operation of
``/openapi.json`` and sends them to a live server over a store holding real runs and a
model, with an admin key so every route is reachable. Kept small (a few examples per
operation) so it runs in well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.unit.server.conftest import LiveServer
from tests.unit.server.pipelines_for_server import churn_training, training

EXAMPLES_PER_OPERATION = 6


@pytest.fixture
def backend() -> str:
    """The fuzzing runs on SQLite only: it checks the API layer, not the database."""
    return "sqlite"


def test_no_operation_answers_with_a_server_error(live: LiveServer) -> None:
    import schemathesis

    training(rows=8)
    churn_training(C=0.5)
    admin = {"Authorization": f"Bearer {live.keys['admin']}"}
    spec = live.get("/openapi.json", role="admin").json()
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(base_url=live.url, headers=admin, timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                    f"{response.status_code} {response.text[:300]}"
                )

        check()
    assert operations > 30
    assert len(statuses) >= 2 * operations
    assert 200 in statuses  # the generated requests reach real data, not only errors
    assert not failures, "\n".join(failures)
