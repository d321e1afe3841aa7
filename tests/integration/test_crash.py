"""A driver killed with SIGKILL: the run is marked crashed, nothing half-written is loaded,
and resuming completes it. A corrupted artifact is an error, never a wrong value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlzen import Client
from mlzen.errors import ArtifactCorruptedError, RunFailedError
from tests.integration import shapes_for_kill

SCRIPT = textwrap.dedent(
    """
    import time
    from pathlib import Path
    from mlzen import pipeline, step

    @step
    def first() -> list:
        return list(range(1000))

    @step
    def slow(data: list) -> int:
        Path("started").write_text("yes")
        if not Path("release").exists():
            time.sleep(60)
        return sum(data)

    @pipeline
    def crashy():
        slow(first())

    if __name__ == "__main__":
        crashy()
    """
)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_killed_driver_leaves_a_crashed_resumable_run(
    project: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    (project / "crashy.py").write_text(SCRIPT)
    env = {
        **os.environ,
        "MLZEN_PROJECT_ROOT": str(project),
        "MLZEN_HEARTBEAT_INTERVAL": "0.2",
        "MLZEN_LEASE_SECONDS": "1",
        "MLZEN_EXECUTOR": executor,
    }
    driver = subprocess.Popen(
        [sys.executable, "crashy.py"], cwd=project, env=env, start_new_session=True
    )
    _wait_for(project / "started")
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and any step worker, mid-step
    driver.wait()

    client = Client()
    run = client.get_pipeline_run("latest")
    if run.status == "running":
        time.sleep(1.5)  # let the lease run out
        run = client.get_pipeline_run("latest")
    assert run.status == "crashed"
    assert run.steps["slow"].status == "crashed"
    assert run.steps["first"].status == "completed"
    assert "heartbeats" in run.error
    # No half-written artifact is visible: staging leftovers are never versions.
    for version in client.list_artifact_versions():
        version.load()

    (project / "release").write_text("yes")
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    resumed = run.resume()
    assert resumed.status == "completed"
    assert resumed.steps["first"].status == "cached"
    assert resumed.steps["slow"].outputs["output"].load() == sum(range(1000))


def test_corrupted_artifact_is_an_error_naming_the_artifact(project: Path) -> None:
    from mlzen import pipeline, step

    @step
    def make() -> list:
        return [1, 2, 3]

    @step
    def use(values: list) -> int:
        return sum(values)

    @pipeline
    def corrupt():
        use(make())

    run = corrupt()
    version = run.steps["make"].outputs["output"]
    files = [p for p in Path(version.uri).rglob("*") if p.is_file()]
    files[0].write_bytes(files[0].read_bytes().replace(b"2", b"7"))
    with pytest.raises(ArtifactCorruptedError) as caught:
        version.load()
    assert version.uri in str(caught.value)
    # A downstream step reading it fails instead of computing with a wrong value.
    with pytest.raises(RunFailedError) as failed:
        corrupt.with_options(steps={"use": {"enable_cache": False}})()
    assert "ArtifactCorruptedError" in failed.value.run.steps["use"].error


def test_running_run_with_fresh_heartbeat_is_not_marked_crashed(project: Path) -> None:
    (project / "crashy.py").write_text(SCRIPT)
    env = {
        **os.environ,
        "MLZEN_PROJECT_ROOT": str(project),
        "MLZEN_HEARTBEAT_INTERVAL": "0.2",
        "MLZEN_LEASE_SECONDS": "2",
    }
    driver = subprocess.Popen([sys.executable, "crashy.py"], cwd=project, env=env)
    try:
        _wait_for(project / "started")
        time.sleep(2.5)  # longer than the lease: only the heartbeat keeps it alive
        assert Client().get_pipeline_run("latest").status == "running"
        (project / "release").write_text("yes")
    finally:
        driver.wait(timeout=120)
    assert Client().get_pipeline_run("latest").status == "completed"


def test_step_worker_killed_fails_the_run_and_keeps_finished_artifacts(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", "processes")
    with pytest.raises(RunFailedError) as caught:
        shapes_for_kill.killed()
    run = caught.value.run
    assert run.status == "failed"
    assert run.steps["kill_self"].status == "failed"
    assert "terminated abruptly" in run.steps["kill_self"].error
    assert run.steps["first_value"].outputs["output"].load() == 41
