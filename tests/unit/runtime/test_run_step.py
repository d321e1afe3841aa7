"""What happens inside one step: retries, hooks, logs, context, metadata, contracts."""

from __future__ import annotations

import logging
from typing import Annotated

import pytest

from mlzen import Client, get_step_context, log_metadata, pipeline, step
from mlzen.errors import MlzenError, NotFoundError, RunFailedError

attempts: list[int] = []
hook_calls: list[tuple[str, object]] = []


@step(retries=2, retry_delay=0.01)
def flaky() -> int:
    attempts.append(1)
    if len(attempts) < 3:
        raise RuntimeError(f"attempt {len(attempts)} fails")
    return len(attempts)


@step(retries=1, retry_delay=0.01)
def always_fails() -> int:
    raise RuntimeError("never works")


def test_retries_rerun_the_function_until_it_succeeds() -> None:
    attempts.clear()

    @pipeline(enable_cache=False)
    def p():
        flaky()

    run = p()
    step_run = run.steps["flaky"]
    assert step_run.status == "completed"
    assert step_run.attempts == 3
    assert step_run.outputs["output"].load() == 3
    assert "attempt 1 fails" in step_run.logs and "Retrying in 0.01s" in step_run.logs


def test_retries_give_up_after_the_last_attempt() -> None:
    @pipeline
    def p():
        always_fails()

    with pytest.raises(RunFailedError) as caught:
        p()
    step_run = caught.value.run.steps["always_fails"]
    assert step_run.attempts == 2
    assert "never works" in step_run.error


def on_success(*, context, **kwargs):
    hook_calls.append(("success", context.step_name))


def on_failure(exception, context):
    hook_calls.append(("failure", str(exception)))


@step(on_success=on_success)
def fine() -> int:
    return 1


@step(on_failure=on_failure)
def broken(x: int) -> int:
    raise KeyError("missing")


def test_hooks_receive_what_they_ask_for() -> None:
    hook_calls.clear()

    @pipeline
    def p():
        broken(fine())

    with pytest.raises(RunFailedError):
        p()
    assert hook_calls == [("success", "fine"), ("failure", "'missing'")]


@step
def chatty() -> int:
    print("to stdout")
    import sys

    print("to stderr", file=sys.stderr)
    logging.getLogger("user.module").warning("a warning")
    return 1


def test_prints_and_logging_are_captured_per_step() -> None:
    @pipeline
    def p():
        chatty()
        fine()

    run = p()
    logs = run.steps["chatty"].logs
    assert "to stdout" in logs and "to stderr" in logs and "a warning" in logs
    assert "to stdout" not in run.steps["fine"].logs


@step
def introspective(x: int = 1) -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
    context = get_step_context()
    context.add_output_metadata("a", {"note": "first"})
    log_metadata({"accuracy": 0.9, "np": __import__("numpy").float64(2.5), "whole": 2.0})
    log_metadata({"rows": 3}, artifact_name="b")
    assert context.output_names == ["a", "b"]
    assert context.step_name == "introspective"
    assert context.run_name.startswith("ctx-")
    return x, x + 1


def test_step_context_and_metadata() -> None:
    @pipeline(name="ctx")
    def p():
        introspective()

    run = p()
    step_run = run.steps["introspective"]
    assert step_run.metadata == {"accuracy": 0.9, "np": 2.5, "whole": 2.0}
    assert type(step_run.metadata["whole"]) is float
    assert step_run.outputs["a"].metadata["note"] == "first"
    assert step_run.outputs["b"].metadata["rows"] == 3


def test_unknown_output_metadata_names_the_output() -> None:
    @step
    def wrong() -> int:
        get_step_context().add_output_metadata("nope", {"x": 1})
        return 1

    @pipeline
    def p():
        wrong()

    with pytest.raises(RunFailedError) as caught:
        p()
    assert "NotFoundError" in caught.value.run.steps["wrong"].error
    assert "no output 'nope'" in caught.value.run.steps["wrong"].error


def test_get_step_context_outside_a_step() -> None:
    with pytest.raises(MlzenError, match="outside a running step"):
        get_step_context()


def test_log_metadata_outside_a_step_targets_by_id() -> None:
    @pipeline
    def p():
        fine()

    run = p()
    log_metadata({"reviewed": True}, run_id=run.id)
    log_metadata({"checked": 1}, step_run_id=run.steps["fine"].id)
    assert run.metadata == {"reviewed": True}
    assert run.steps["fine"].metadata == {"checked": 1}
    with pytest.raises(MlzenError, match="exactly one target"):
        log_metadata({"x": 1})
    with pytest.raises(MlzenError, match="'bad'"):
        log_metadata({"bad": object()}, run_id=run.id)


def test_wrong_number_of_outputs_names_the_step() -> None:
    @step
    def two() -> tuple[int, int]:
        return (1, 2, 3)  # type: ignore[return-value]

    @pipeline
    def p():
        two()

    with pytest.raises(RunFailedError) as caught:
        p()
    assert "Step 'two' declares 2 outputs (output, output_1) but returned a tuple of 3" in (
        caught.value.run.steps["two"].error
    )


def test_output_of_the_wrong_type_names_step_and_output() -> None:
    @step
    def typed() -> Annotated[int, "count"]:
        return "three"  # type: ignore[return-value]

    @pipeline
    def p():
        typed()

    with pytest.raises(RunFailedError) as caught:
        p()
    assert "Step 'typed' output 'count' is declared as int" in caught.value.run.steps["typed"].error


def test_step_outside_a_pipeline_is_the_plain_function() -> None:
    assert fine() == 1
    attempts.clear()
    with pytest.raises(RuntimeError):
        flaky()  # no retries outside a pipeline: it is just the function


def test_not_found_errors_name_what_was_asked_for() -> None:
    client = Client()
    with pytest.raises(NotFoundError, match="'nothing'"):
        client.get_pipeline_run("nothing")
    with pytest.raises(NotFoundError, match="'raw'"):
        client.get_artifact_version("raw")
    with pytest.raises(NotFoundError, match="no runs yet"):
        client.get_pipeline_run("latest")


@step
def counted(count: int = 3) -> Annotated[list, "counted"]:
    return list(range(count))


@pipeline
def counting(count: int = 3) -> None:
    counted(count=count)


def test_a_cache_hit_needs_its_outputs_in_this_stacks_artifact_store(
    tmp_path, monkeypatch: pytest.MonkeyPatch, store_backend: str
) -> None:
    """One metadata store, two artifact folders: each takes only its own hits."""
    first = counting()
    assert first.steps["counted"].status == "completed"
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", str(tmp_path / "elsewhere"))
    second = counting()
    assert second.steps["counted"].status == "completed"
    assert second.steps["counted"].outputs["counted"].load() == [0, 1, 2]
    for _ in range(6):  # more newer hits from the other folder than a lookup returns
        assert counting().steps["counted"].status == "cached"
    monkeypatch.delenv("MLZEN_ARTIFACT_ROOT")
    again = counting()
    assert again.steps["counted"].status == "cached"
    assert again.steps["counted"].cached_from_id == first.steps["counted"].id
