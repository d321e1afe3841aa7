"""The Ray orchestrator against a real Ray head running as a separate process.

The head is started once per session (``ray start --head --node-ip-address=127.0.0.1``,
2 CPUs, token authentication off, its own temp dir and ports) and stopped by the pids of
the processes it started. Behaviour tests run on both orchestrators, local and Ray, and
expect the same results.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pytest

from mlzen import Client, Model, log_metadata, pipeline, step
from mlzen.config import load_settings
from mlzen.errors import ConfigError, MlzenError, RunFailedError
from mlzen.orchestrators.base import RunHandle, schedule
from mlzen.orchestrators.ray import (
    INSTALL_HINT,
    RayExecutor,
    RayOrchestrator,
    RayOrchestratorConfig,
    RayOrchestratorFlavor,
    check_address,
    task_options,
)
from mlzen.spec import StepSpec
from mlzen.stack import Stack
from tests import shapes
from tests.integration.services import free_port

ORCHESTRATORS = ["local", "ray"]


@pytest.fixture(params=ORCHESTRATORS)
def stack(request: pytest.FixtureRequest, project: Path) -> Stack:
    if request.param == "local":
        return Stack(load_settings())
    address = request.getfixturevalue("ray_cluster")
    return Stack(load_settings(), "ray", orchestrator=RayOrchestrator(address=address))


@pytest.fixture
def ray_stack(ray_cluster: str, project: Path) -> Stack:
    return Stack(load_settings(), "ray", orchestrator=RayOrchestrator(address=ray_cluster))


def run_on(stack: Stack, pipeline_: Any, **params: Any) -> Any:
    return Client(stack).run_pipeline(*pipeline_.build(**params))


def output(run: Any, step_id: str, name: str = "output") -> Any:
    return run.steps[step_id].outputs[name].load()


# -- steps only these tests use (importable, so Ray workers load them by reference) --------


@step(retries=2, retry_delay=0.01, enable_cache=False)
def flaky(marker: str, failures: int = 2) -> int:
    path = Path(marker)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


@step
def counted(marker: str) -> Annotated[int, "calls"]:
    with open(marker, "a") as calls:
        calls.write("x")
    return os.path.getsize(marker)


@step
def chatty(x: int) -> int:
    print(f"printed {x}")
    print("to stderr", file=sys.stderr)
    logging.getLogger("user.module").warning("a warning")
    return x


@step
def measured(x: int) -> Annotated[int, "doubled"]:
    log_metadata({"pid": os.getpid(), "score": 0.5})
    log_metadata({"rows": 3}, artifact_name="doubled")
    return 2 * x


@step(settings={"resources": {"cpus": 1, "memory": "100MB"}})
def assigned_resources(x: int) -> dict[str, float]:
    import ray

    return dict(ray.get_runtime_context().get_assigned_resources())


@pipeline(enable_cache=False)
def retried(marker: str) -> None:
    flaky(marker)


@pipeline
def counting(marker: str) -> None:
    shapes.increment(counted(marker))


@pipeline(enable_cache=False)
def observed() -> None:
    value = shapes.source(value=4)
    chatty(value)
    measured(value)


@step
def frame(rows: int = 5) -> Annotated[pd.DataFrame, "frame"]:
    return pd.DataFrame({"x": range(rows), "y": [0.5 * i for i in range(rows)]})


@step
def scored(df: pd.DataFrame) -> Annotated[float, "score"]:
    log_metadata({"score": float(df["y"].sum())}, model=True)
    return float(df["y"].sum())


@pipeline(enable_cache=False, model=Model(name="ray-model"))
def modelled() -> None:
    scored(frame())
    scored(frame(rows=3), id="scored_small")


@pipeline(enable_cache=False)
def resourced() -> None:
    assigned_resources(shapes.source())


# -- the same behaviour on both orchestrators -----------------------------------------------


def test_chain_passes_values_along(stack: Stack) -> None:
    run = run_on(stack, shapes.chain, length=4)
    assert run.status == "completed"
    assert [s.status for s in run.steps.values()] == ["completed"] * 5
    assert output(run, "increment_4") == 5


def test_diamond_joins_both_branches(stack: Stack) -> None:
    run = run_on(stack, shapes.diamond.with_options(enable_cache=False))
    assert output(run, "add") == 22
    assert run.steps["add"].inputs["x"].producer.name == "increment"
    assert run.steps["add"].inputs["y"].producer.name == "increment_2"
    assert {c.name for c in run.steps["source"].outputs["output"].consumers} == {
        "increment",
        "increment_2",
    }


def test_crossed_branches_keep_argument_order(stack: Stack) -> None:
    run = run_on(stack, shapes.crossed.with_options(enable_cache=False))
    assert run.steps["add"].inputs["x"].load() == 1
    assert run.steps["add_2"].inputs["x"].load() == 2
    assert output(run, "add") == output(run, "add_2") == 3


def test_fan_out_runs_branches_at_the_same_time(stack: Stack, tmp_path: Path) -> None:
    # Half a CPU each: all four branches fit the 2-CPU cluster at once. Each waits inside
    # its step until all four have arrived.
    fan = shapes.fan_out_meeting.with_options(settings={"resources": {"cpus": 0.5}})
    run = run_on(stack, fan, folder=str(tmp_path))
    assert [run.steps[f"meet{s}"].status for s in ("", "_2", "_3", "_4")] == ["completed"] * 4
    assert output(run, "total") == 8


def test_failing_middle_step_fails_run_and_keeps_finished_work(stack: Stack) -> None:
    with pytest.raises(RunFailedError) as caught:
        run_on(stack, shapes.failing_middle, seconds=0.3)
    error = caught.value
    assert error.step_name == "boom"
    run = Client(stack).get_pipeline_run(error.run_id)
    assert run.status == "failed"
    assert run.steps["boom"].status == "failed"
    assert "ValueError: boom at 1" in run.steps["boom"].error
    assert run.steps["slow_increment"].status == "completed"
    assert output(run, "slow_increment") == 2
    assert "increment" not in run.steps


def test_process_ids_show_where_steps_run(stack: Stack) -> None:
    run = run_on(stack, shapes.process_ids.with_options(enable_cache=False))
    pids = {output(run, "pid_of", "pid"), output(run, "pid_of_2", "pid")}
    if stack.orchestrator is None:
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


def test_retries_rerun_the_step_until_it_succeeds(stack: Stack, tmp_path: Path) -> None:
    run = run_on(stack, retried, marker=str(tmp_path / "attempts"))
    step_run = run.steps["flaky"]
    assert step_run.status == "completed"
    assert step_run.attempts == 3
    assert output(run, "flaky") == 3
    assert "attempt 1 fails" in step_run.logs and "Retrying in 0.01s" in step_run.logs


def test_cached_rerun_does_no_work(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    first = run_on(stack, counting, marker=str(marker))
    second = run_on(stack, counting, marker=str(marker))
    assert [s.status for s in first.steps.values()] == ["completed", "completed"]
    assert [s.status for s in second.steps.values()] == ["cached", "cached"]
    assert second.steps["counted"].cached_from_id == first.steps["counted"].id
    assert marker.read_text() == "x"  # the step function ran once
    assert output(second, "increment") == 2


def test_logs_and_metadata_are_recorded(stack: Stack) -> None:
    run = run_on(stack, observed)
    logs = run.steps["chatty"].logs
    assert "printed 4" in logs and "to stderr" in logs and "a warning" in logs
    assert "printed" not in run.steps["measured"].logs
    metadata = run.steps["measured"].metadata
    assert metadata["score"] == 0.5
    assert (metadata["pid"] == os.getpid()) == (stack.orchestrator is None)
    assert run.steps["measured"].outputs["doubled"].metadata["rows"] == 3


def test_parallel_steps_link_one_model_version_with_visualizations(stack: Stack) -> None:
    run = run_on(stack, modelled)
    versions = Client().list_model_versions("ray-model")
    assert [v.number for v in versions] == [1]  # one version, however many workers link
    assert set(versions[0].artifacts) == {"frame", "score"}
    assert versions[0].metadata["score"] in (5.0, 1.5)
    frame_version = run.steps["frame"].outputs["frame"]
    kinds = {v.name: v.kind for v in frame_version.visualizations}
    assert kinds == {"preview": "html", "histograms": "png"}
    assert frame_version.visualizations[0].read_bytes()


# -- Ray only -------------------------------------------------------------------------------


def test_resource_settings_become_ray_resource_requests(ray_stack: Stack) -> None:
    run = run_on(ray_stack, resourced)
    assert output(run, "assigned_resources") == {"CPU": 1.0, "memory": 100_000_000.0}


def test_invalid_memory_is_a_config_error_naming_the_step(ray_stack: Stack) -> None:
    greedy = shapes.increment.configure(settings={"resources": {"memory": "lots"}})

    @pipeline(enable_cache=False)
    def wants_memory() -> None:
        greedy(shapes.source())

    with pytest.raises(ConfigError) as caught:
        run_on(ray_stack, wants_memory)
    assert caught.value.step_name == "increment"
    assert "'increment'" in str(caught.value) and "'lots'" in str(caught.value)


def test_artifacts_through_an_fsspec_store(ray_cluster: str, project: Path) -> None:
    from mlzen.artifacts.fsspec import FsspecArtifactStore

    store = FsspecArtifactStore(f"file://{project}/fsspec-artifacts", cache_dir=project / "cache")
    stack = Stack(
        load_settings(),
        "ray",
        orchestrator=RayOrchestrator(address=ray_cluster),
        artifact_store=store,
    )
    run = run_on(stack, shapes.chain, length=2)
    assert output(run, "increment_2") == 3
    assert run.steps["increment_2"].outputs["output"].uri.startswith("file://")


def test_artifacts_through_s3_on_moto(ray_cluster: str, project: Path) -> None:
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    from mlzen.artifacts.fsspec import FsspecArtifactStore

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        options = {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
        import s3fs

        s3fs.S3FileSystem(**options, skip_instance_cache=True).mkdir("mlzen-ray")
        store = FsspecArtifactStore(
            "s3://mlzen-ray/artifacts", cache_dir=project / "cache", **options
        )
        stack = Stack(
            load_settings(),
            "ray",
            orchestrator=RayOrchestrator(address=ray_cluster),
            artifact_store=store,
        )
        run = run_on(stack, shapes.process_ids.with_options(enable_cache=False))
        assert os.getpid() != output(run, "pid_of", "pid")
        assert run.steps["source"].outputs["output"].uri.startswith("s3://mlzen-ray/")
    finally:
        server.stop()


def test_abort_cancels_running_tasks(ray_stack: Stack) -> None:
    import ray.exceptions

    spec, steps = shapes.failing_middle.with_options(enable_cache=False).build(seconds=60)
    store = ray_stack.metadata_store
    run_id = store.create_run(
        pipeline_name=spec.name,
        run_name="aborted",
        spec=spec.to_dict(),
        parameters={},
        stack="ray",
        code_version={},
        environment={},
        lease_seconds=60,
    )
    submitted = {}

    class RecordingExecutor(RayExecutor):
        def submit(self, launch, step):
            future = super().submit(launch, step)
            submitted[launch.step.id] = future
            return future

    class Stop(Exception):
        pass

    def stop_when_boom_ends(outcome: Any) -> None:
        if outcome.step_id == "boom":
            raise Stop  # like Ctrl-C while slow_increment sleeps

    executor = RecordingExecutor(ray_stack.orchestrator.config, store, ray_stack.artifact_store)
    started = time.monotonic()
    with pytest.raises(Stop):
        schedule(
            spec, steps, RunHandle(run_id, "aborted", spec.name), executor, stop_when_boom_ends
        )
    with pytest.raises(ray.exceptions.RayError):
        submitted["slow_increment"].result(timeout=30)
    assert time.monotonic() - started < 30  # cancelled, not slept out


def test_a_real_head_passes_the_address_check(ray_cluster: str) -> None:
    check_address(ray_cluster, timeout=30)


def test_connection_is_reused_and_another_cluster_refused(
    ray_stack: Stack, ray_cluster: str
) -> None:
    import ray

    run_on(ray_stack, shapes.chain, length=1)
    port = ray_cluster.rpartition(":")[2]
    same = Stack(load_settings(), "ray", orchestrator=RayOrchestrator(address=f"localhost:{port}"))
    assert run_on(same, shapes.chain, length=1).status == "completed"
    assert ray.is_initialized()  # finalize left the connection to the cluster alone
    other = Stack(load_settings(), "ray", orchestrator=RayOrchestrator(address="127.0.0.1:1"))
    with pytest.raises(ConfigError, match="already connected"):
        run_on(other, shapes.chain, length=1)


def test_a_local_cluster_is_started_sized_and_shut_down(project: Path) -> None:
    pytest.importorskip("ray", reason='ray is not installed: pip install "mlzen[ray]"')
    script = textwrap.dedent(
        """
        import json, os, sys
        import ray
        from mlzen import Client
        from mlzen.config import load_settings
        from mlzen.orchestrators.ray import RayOrchestrator
        from mlzen.stack import Stack
        from tests import shapes

        from mlzen import pipeline
        from mlzen.errors import ConfigError

        stack = Stack(load_settings(), "ray", orchestrator=RayOrchestrator(num_cpus=1))
        spec, steps = shapes.process_ids.with_options(enable_cache=False).build()
        run = Client(stack).run_pipeline(spec, steps)
        pid = run.steps["pid_of"].outputs["pid"].load()
        print(json.dumps([run.status, pid != os.getpid(), ray.is_initialized()]))

        greedy = shapes.increment.configure(settings={"resources": {"cpus": 3}})

        @pipeline(enable_cache=False)
        def too_big():
            greedy(shapes.source())

        try:
            Client(stack).run_pipeline(*too_big.build())
        except ConfigError as exc:
            print(json.dumps([exc.step_name, "has 1." in str(exc), ray.is_initialized()]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["MLZEN_PROGRESS"] = "0"
    # A new local cluster writes an auth token to ~/.ray, which would switch token
    # authentication on for every later `ray start` on this machine.
    env["HOME"] = str(project)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    ran, refused = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert ran == ["completed", True, False]  # ran elsewhere; the cluster was shut down
    # A local cluster cannot grow: a step asking for more than it has fails fast.
    assert refused == ["increment", True, False]


# -- configuration and errors (no cluster needed) -------------------------------------------


def test_missing_ray_is_a_clear_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    stack = Stack(load_settings(), "ray", orchestrator=RayOrchestrator())
    with pytest.raises(MlzenError) as caught:
        run_on(stack, shapes.chain, length=1)
    assert INSTALL_HINT in str(caught.value)
    assert 'pip install "mlzen[ray]"' in str(caught.value)


@pytest.mark.parametrize(
    ("address", "remote"),
    [
        (None, False),
        ("auto", False),
        ("127.0.0.1:6379", False),
        ("localhost:6379", False),
        ("[::1]:6379", False),
        ("ray://127.0.0.1:10001", False),
        ("10.0.0.5:6379", True),
        ("head.example.com:6379", True),
        ("ray://head.example.com:10001", True),
    ],
)
def test_addresses_and_whether_they_are_remote(address: str | None, remote: bool) -> None:
    assert RayOrchestrator(address=address).is_remote is remote


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "http://head:6379"}, "not a Ray cluster address"),
        ({"address": "head"}, "not a Ray cluster address"),
        ({"address": "head:99999"}, "not a Ray cluster address"),
        ({"address": "auto", "num_cpus": 2}, "num_cpus sizes the local cluster"),
        ({"num_cpus": 0}, "greater than or equal to 1"),
        ({"runtime_env": {"env_vars": {"N": 1}}}, "string values"),
        ({"adress": "auto"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_rejected_with_the_reason(fields: dict, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        RayOrchestratorConfig(**fields)


def test_flavor_builds_the_orchestrator_from_a_config() -> None:
    flavor = RayOrchestratorFlavor()
    assert (flavor.kind, flavor.name, flavor.config_class) == (
        "orchestrator",
        "ray",
        RayOrchestratorConfig,
    )
    built = flavor.build(RayOrchestratorConfig(address="auto", runtime_env={"env_vars": {}}))
    assert isinstance(built, RayOrchestrator) and built.config.address == "auto"


def test_flavor_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group="mlzen.flavors")}
    assert found.get("orchestrator.ray") == "mlzen.orchestrators.ray:RayOrchestratorFlavor"


def resources_of(**resources: Any) -> StepSpec:
    return StepSpec(id="train", name="train", source="m:train", settings={"resources": resources})


@pytest.mark.parametrize(
    ("resources", "options"),
    [
        ({"cpus": 2, "gpus": 0, "memory": "2GB"}, {"num_cpus": 2, "num_gpus": 0, "memory": 2e9}),
        ({"cpus": 0.5}, {"num_cpus": 0.5}),
        ({"memory": "512MiB"}, {"memory": 512 * 2**20}),
        ({"memory": "1.5 gb"}, {"memory": 1_500_000_000}),
        ({"memory": 1024}, {"memory": 1024}),
        ({}, {}),
    ],
)
def test_resources_become_task_options(resources: dict, options: dict) -> None:
    assert task_options(resources_of(**resources)) == options


@pytest.mark.parametrize(
    "resources",
    [
        {"memory": "2 bananas"},
        {"memory": "-1GB"},
        {"memory": 0},
        {"memory": True},
        {"cpus": "two"},
        {"cpus": -1},
        {"gpus": 1.5},
        {"cpu": 2},
    ],
)
def test_invalid_resources_name_the_step(resources: dict) -> None:
    with pytest.raises(ConfigError, match="Step 'train'") as caught:
        task_options(resources_of(**resources))
    assert caught.value.step_name == "train"


def test_importing_the_module_does_not_import_ray() -> None:
    probe = "import sys, mlzen.orchestrators.ray; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
