"""Step hooks never fail silently, and get what they ask for (issue 10, G3).

A hook that raises keeps the step's own status (as in ZenML) but is recorded on the step
run as ``hook_error`` and shown by ``runs show``, ``runs logs``, the REST API and, through
a server, the remote store; ``get_step_context()`` works inside both hooks; the exception
reaches a failure hook by annotation or position; an import string is resolved, or
refused, when the step is defined.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlzen import Client, get_step_context, log_metadata, pipeline, step
from mlzen.errors import RunFailedError, StepDefinitionError
from tests.cli import run_main

seen: list[tuple[str, Any]] = []


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    seen.clear()
    yield
    seen.clear()


def notify_and_fail() -> None:
    seen.append(("success", get_step_context().step_name))
    log_metadata({"notified": True})
    raise RuntimeError("slack is down")


def alert_and_fail(exception: BaseException) -> None:
    seen.append(("failure", get_step_context().step_name))
    raise ConnectionError(f"pager is down while reporting {exception}")


@step(on_success=notify_and_fail)
def train() -> int:
    return 42


@step(on_failure=alert_and_fail)
def evaluate(model: int) -> None:
    raise ValueError(f"model {model} is no good")


@pipeline(enable_cache=False)
def succeeding() -> None:
    train()


@pipeline(enable_cache=False)
def failing() -> None:
    evaluate(train())


def test_a_failing_success_hook_is_recorded_and_shown_and_the_step_stays_completed(
    store_backend: str,
) -> None:
    run = succeeding()
    assert run.status == "completed"
    trained = run.steps["train"]
    assert trained.status == "completed"
    assert trained.outputs["output"].load() == 42
    assert seen == [("success", "train")]  # get_step_context() worked inside the hook
    assert trained.hook_error is not None
    assert "on_success hook 'tests.faults.test_hooks.notify_and_fail' raised" in trained.hook_error
    assert trained.hook_error.rstrip().endswith("RuntimeError: slack is down")
    assert trained.metadata["notified"] is True  # logged in the hook, recorded

    code, out, err = run_main("runs", "show", run.id)
    assert code == 0, err
    assert "hook failed" in out
    assert "RuntimeError: slack is down" in out
    code, out, err = run_main("runs", "show", run.id, "--json")
    assert code == 0, err
    assert "RuntimeError: slack is down" in json.loads(out)["steps"][0]["hook_error"]
    code, out, err = run_main("runs", "logs", run.id, "train")
    assert code == 0, err
    assert "RuntimeError: slack is down" in out


def test_a_failing_failure_hook_is_recorded_and_the_step_keeps_its_own_error() -> None:
    with pytest.raises(RunFailedError) as caught:
        failing()
    evaluated = caught.value.run.steps["evaluate"]
    assert evaluated.status == "failed"
    assert "ValueError: model 42 is no good" in evaluated.error
    assert "ConnectionError" not in evaluated.error
    assert seen == [("success", "train"), ("failure", "evaluate")]
    assert evaluated.hook_error is not None
    assert "on_failure hook 'tests.faults.test_hooks.alert_and_fail' raised" in (
        evaluated.hook_error
    )
    assert "ConnectionError: pager is down while reporting model 42 is no good" in (
        evaluated.hook_error
    )
    code, out, err = run_main("runs", "logs", evaluated.run_id, "evaluate")
    assert code == 0, err
    assert out.count("ConnectionError: pager is down") == 1  # captured in the logs, once
    code, out, err = run_main("runs", "show", evaluated.run_id)
    assert "hook error in evaluate: on_failure hook" in out


# -- what a failure hook is given ---------------------------------------------------------


def by_annotation(context: Any, problem: ValueError) -> None:
    seen.append(("by_annotation", problem))


def by_string_annotation(problem: BaseException) -> None:  # a str under __future__
    seen.append(("by_string_annotation", problem))


def by_position(e) -> None:  # type: ignore[no-untyped-def]
    seen.append(("by_position", e))


def by_position_only(err, /) -> None:  # type: ignore[no-untyped-def]
    seen.append(("by_position_only", err))


def by_keyword(*, exception: Exception, context: Any) -> None:  # as hooks were written
    seen.append(("by_keyword", exception))


def by_kwargs(**kwargs: Any) -> None:  # as hooks were written
    seen.append(("by_kwargs", kwargs["exception"]))


def takes_nothing() -> None:
    seen.append(("takes_nothing", None))


@pytest.mark.parametrize(
    "hook",
    [
        by_annotation,
        by_string_annotation,
        by_position,
        by_position_only,
        by_keyword,
        by_kwargs,
        takes_nothing,
    ],
)
def test_the_exception_reaches_a_failure_hook_whatever_its_parameter_is_called(hook: Any) -> None:
    @step(on_failure=hook)
    def broken() -> None:
        raise ValueError("broken on purpose")

    @pipeline
    def p() -> None:
        broken()

    with pytest.raises(RunFailedError) as caught:
        p()
    assert caught.value.run.steps["broken"].hook_error is None
    assert len(seen) == 1
    name, received = seen[0]
    assert name == hook.__name__
    if hook is not takes_nothing:
        assert isinstance(received, ValueError)
        assert str(received) == "broken on purpose"


# -- hooks given as import strings, checked when the step is defined ------------------------


def test_an_import_string_hook_is_resolved_when_the_step_is_defined() -> None:
    @step(
        on_failure="tests.faults.test_hooks.by_position",
        on_success="tests.faults.test_hooks:takes_nothing",
    )
    def named() -> None:
        pass

    assert named.options.on_failure is by_position
    assert named.options.on_success is takes_nothing


@pytest.mark.parametrize(
    "path",
    ["tests.faults.no_such_module.hook", "tests.faults.test_hooks.no_such_hook", "nodots"],
)
def test_an_import_string_hook_that_does_not_exist_fails_when_the_step_is_defined(
    path: str,
) -> None:
    with pytest.raises(StepDefinitionError) as caught:

        @step(on_failure=path)
        def named() -> None:
            pass

    message = caught.value.message
    assert f"on_failure='{path}'" in message and "Step 'named'" in message
    assert "package.module.function" in message
    assert caught.value.fields["argument"] == "on_failure"


def test_a_hook_mlzen_cannot_call_fails_when_the_step_is_defined() -> None:
    def needs_more(context: Any, recipient: str) -> None:
        pass

    with pytest.raises(StepDefinitionError) as caught:
        step(on_success=needs_more)(lambda: None)
    assert "'recipient'" in caught.value.message
    assert "needs_more" in caught.value.message

    with pytest.raises(StepDefinitionError) as caught:
        train.configure(on_success=42)
    assert "on_success=42" in caught.value.message


# -- in worker processes, and through a team server --------------------------------------


def test_a_hook_error_in_a_worker_process_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", "processes")
    run = succeeding()
    assert run.status == "completed"
    assert "RuntimeError: slack is down" in (run.steps["train"].hook_error or "")


@step(on_success=notify_and_fail)
def report() -> None:
    pass


@pipeline(enable_cache=False)
def reporting() -> None:
    report()


def test_a_hook_error_is_recorded_through_a_team_server(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi", reason='the server needs: pip install "mlzen[server]"')
    import httpx

    from mlzen.server import auth
    from mlzen.server.app import create_app
    from mlzen.store.remote import RemoteMetadataStore, close_connections
    from tests.live_server import start_server, stop_server

    server_root = tmp_path / "server"
    (server_root / ".mlzen").mkdir(parents=True)
    app = create_app(f"sqlite:///{server_root / 'server.db'}", project_root=server_root)
    auth.create_user(app.state.store, "editor", "editor-password", "editor")
    key = auth.create_api_key(app.state.store, "editor", "editor-key")
    server, thread, url = start_server(app)
    try:
        monkeypatch.setenv("MLZEN_SERVER_URL", url)
        monkeypatch.setenv("MLZEN_API_KEY", key)
        assert isinstance(Client().store, RemoteMetadataStore)
        run = reporting()
        assert run.status == "completed"
        assert "RuntimeError: slack is down" in (run.steps["report"].hook_error or "")
        answer = httpx.get(
            f"{url}/api/v1/runs/{run.id}/steps/report",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert "RuntimeError: slack is down" in answer.json()["hook_error"]
    finally:
        close_connections()
        stop_server(server, thread)
