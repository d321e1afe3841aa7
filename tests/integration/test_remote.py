"""A project logged in to a team server records its runs there, over real HTTP.

The server is ``create_app`` under uvicorn in its own process on 127.0.0.1, over its own
store (SQLite in a temporary folder, or PostgreSQL); the test's project is a second
project that logs in with ``mlzen login``. Nothing is mocked: the kill test kills the
server process while a step waits, then starts it again on the same port.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from mlzen import Client
from mlzen.cli.main import cli
from mlzen.config import load_settings
from mlzen.errors import LeaseLostError, StoreError
from mlzen.store import queries
from mlzen.store.metadata import MetadataStore
from mlzen.store.remote import RemoteMetadataStore, close_connections
from tests.cli import run_main
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, empty_postgres
from tests.integration import pipelines_for_remote as pipelines
from tests.integration.services import free_port

pytest.importorskip("fastapi", reason='the server needs: pip install "mlzen[server]"')

SERVE = """
import sys

import uvicorn

from mlzen.server.app import create_app

store_url, root, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_app(store_url, project_root=root)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


@dataclass
class TeamServer:
    """An mlzen server process over its own store, with an API key per role."""

    store_url: str
    root: Path
    port: int = field(default_factory=free_port)
    keys: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLZEN_")}
        env["MLZEN_PROJECT_ROOT"] = str(self.root)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, self.store_url, str(self.root), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"The mlzen server did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """End the server at once, as a crash or a lost machine would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def store(self) -> MetadataStore:
        """The server's own store, read directly (not through the server)."""
        return MetadataStore(self.store_url)


def _make_server(root: Path, backend: str) -> TeamServer:
    from mlzen.server import auth

    root.mkdir(parents=True)
    (root / ".mlzen").mkdir()
    if backend == "postgres":
        if not POSTGRES_URL:
            pytest.skip(POSTGRES_SKIP_REASON)
        empty_postgres(POSTGRES_URL)
        store_url = POSTGRES_URL
    else:
        store_url = f"sqlite:///{root / 'server.db'}"
    server = TeamServer(store_url, root)
    store = server.store()
    for role in ("editor", "viewer"):
        auth.create_user(store, f"{role}-user", f"{role}-password", role)
        server.keys[role] = auth.create_api_key(store, f"{role}-user")
    return server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def team_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamServer]:
    """A server shared by the tests of this module, on SQLite and on PostgreSQL."""
    server = _make_server(tmp_path_factory.mktemp("team") / "server", request.param)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        close_connections()


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No progress lines; connections to servers closed after each test."""
    monkeypatch.setenv("MLZEN_PROGRESS", "0")
    yield
    close_connections()


def login(server: TeamServer, role: str = "editor") -> str:
    code, out, err = run_main("login", server.url, "--api-key", server.keys[role])
    assert code == 0, err
    return out


def local_run_count(project: Path) -> int:
    return queries.counts(MetadataStore(load_settings().store_url))["runs"]


# -- logging in and out -----------------------------------------------------------------


def test_login_checks_the_key_keeps_it_private_and_logout_returns_to_the_local_store(
    team_server: TeamServer, project: Path
) -> None:
    credentials = project / ".mlzen" / "credentials.yaml"
    code, out, err = run_main("login", team_server.url, "--api-key", "mlzen_not-a-real-key")
    assert code == 2
    assert team_server.url in err and "mlzen login" in err
    assert not credentials.exists()

    key = team_server.keys["editor"]
    code, out, err = run_main("login", team_server.url, "--api-key", key)
    assert code == 0, err
    assert "artifacts are still saved in" in err  # a local folder teammates cannot open
    assert f"Logged in to {team_server.url} as editor-user (editor)" in out
    assert key not in out + err
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert "credentials.yaml" in (project / ".mlzen" / ".gitignore").read_text().splitlines()
    assert load_settings().server_url == team_server.url

    code, out, err = run_main("status")
    assert code == 0, err
    assert f"{team_server.url} (logged in as editor-user, editor)" in out
    assert key not in out
    assert isinstance(Client().store, RemoteMetadataStore)

    code, out, _ = run_main("logout")
    assert code == 0
    assert f"Logged out of {team_server.url}" in out
    assert not credentials.exists()
    assert type(Client().store) is MetadataStore
    code, out, _ = run_main("status")
    assert "logged in as" not in out


def test_the_readme_flow_a_user_and_key_from_the_cli_then_a_run(
    team_server: TeamServer, project: Path
) -> None:
    server_cli = ("--store-url", team_server.store_url)
    code, _, err = run_main(
        "server",
        "users",
        "create",
        "carol",
        "--role",
        "editor",
        "--password",
        "carol-pass1",
        *server_cli,
    )
    assert code == 0, err
    code, out, err = run_main("server", "keys", "create", "--user", "carol", *server_cli)
    assert code == 0, err
    key = out.strip().splitlines()[0]

    code, out, err = run_main("login", team_server.url, "--api-key", key)
    assert code == 0, err
    assert "as carol (editor)" in out
    run = pipelines.numbers(count=3, tag=uuid.uuid4().hex)
    code, out, err = run_main("runs", "list", "--limit", "500")
    assert code == 0, err
    assert run.name in out
    assert queries.find_run(team_server.store(), run.name)["id"] == run.id


def test_login_asks_for_the_key_when_it_is_not_given(
    team_server: TeamServer, project: Path
) -> None:
    key = team_server.keys["viewer"]
    result = CliRunner().invoke(cli, ["login", team_server.url], input=f"{key}\n")
    assert result.exit_code == 0, result.output
    assert "as viewer-user (viewer)" in result.output
    assert key not in result.output  # typed hidden, never echoed
    assert load_settings().api_key == key


def test_login_refuses_what_is_not_a_server(project: Path) -> None:
    code, _, err = run_main("login", "postgresql://db/mlzen", "--api-key", "k")
    assert code == 2 and "not an mlzen server URL" in err
    port = free_port()  # nothing listens there
    code, _, err = run_main("login", f"http://127.0.0.1:{port}", "--api-key", "k")
    assert code == 2
    assert f"Cannot reach the mlzen server at http://127.0.0.1:{port}" in err
    assert not (project / ".mlzen" / "credentials.yaml").exists()


def test_status_names_a_server_that_does_not_answer(project: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (project / ".mlzen" / "credentials.yaml").write_text(f"server_url: {url}\napi_key: k\n")
    code, out, err = run_main("status")
    assert code == 0, err
    assert f"{url} (not answering: Cannot reach the mlzen server" in " ".join(out.split())


def test_an_api_key_in_config_yaml_is_refused(project: Path) -> None:
    (project / ".mlzen" / "config.yaml").write_text("api_key: mlzen_secret\n")
    code, _, err = run_main("status")
    assert code == 2
    assert "api_key" in err and "mlzen login" in err and "mlzen_secret" not in err


# -- runs recorded on the server ---------------------------------------------------------


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_runs_lineage_metadata_and_cache_live_on_the_server(
    team_server: TeamServer, project: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", executor)
    login(team_server)
    tag = uuid.uuid4().hex  # a cache key of its own on the shared server

    run = pipelines.numbers(count=4, tag=tag)
    again = pipelines.numbers(count=4, tag=tag)

    assert run.status == again.status == "completed"
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert local_run_count(project) == 0
    server = team_server.store()
    on_server = queries.find_run(server, run.id)
    assert on_server["status"] == "completed"
    assert on_server["parameters"] == {"count": 4, "tag": tag}
    steps = {row["step_id"]: row for row in queries.step_runs_of(server, run.id)}
    assert set(steps) == {"make_numbers", "summarize"}
    edges = queries.edges_of(server, [steps["summarize"]["id"]])[steps["summarize"]["id"]]
    produced = queries.edges_of(server, [steps["make_numbers"]["id"]])
    assert edges["input"]["numbers"] == produced[steps["make_numbers"]["id"]]["output"]["numbers"]
    assert queries.metadata_of(server, "step_run", steps["make_numbers"]["id"]) == {
        "count": 4,
        "tag": tag,
    }
    total_id = edges["output"]["total"]
    assert queries.metadata_of(server, "artifact_version", total_id) == {"largest": 3}

    # Reads go through the server too, with the same types as from a local store.
    client = Client()
    fetched = client.get_pipeline_run(run.name)
    assert fetched.created_at == run.created_at and fetched.created_at.year > 2000
    assert fetched.steps["summarize"].outputs["total"].load() == 6
    assert fetched.steps["summarize"].outputs["mean"].load() == 1.5
    assert fetched.steps["make_numbers"].metadata == {"count": 4, "tag": tag}
    numbers = fetched.steps["make_numbers"].outputs["numbers"]
    assert run.id in {c.run_id for c in numbers.consumers}
    producer = numbers.producer
    assert producer is not None and producer.id == fetched.steps["make_numbers"].id
    assert run.id in {r.id for r in client.list_pipeline_runs(pipeline="numbers", limit=500)}
    assert client.get_artifact_version(total_id).load() == 6
    # The files are in this project's artifact store, not on the server.
    uri = client.get_artifact_version(total_id).uri
    assert client.stack.artifact_store.exists(uri)


def test_compare_and_cli_reads_work_remotely(team_server: TeamServer, project: Path) -> None:
    login(team_server)
    tag = uuid.uuid4().hex
    old = pipelines.numbers(count=3, tag=tag)
    new = pipelines.numbers(count=5, tag=tag)

    diff = Client().compare_runs(old.name, new.name)
    assert [(c.name, c.old, c.new) for c in diff.parameters] == [("count", 3, 5)]
    totals = {a.output: a for a in diff.artifacts}
    assert not totals["total"].identical
    code, out, err = run_main("runs", "show", new.name)
    assert code == 0, err
    assert "make_numbers" in out and "count=5" in out
    code, out, err = run_main("diff", old.name, new.name)
    assert code == 0, err
    assert "count" in out


def test_a_viewer_reads_but_cannot_run_a_pipeline(team_server: TeamServer, project: Path) -> None:
    login(team_server, "editor")
    tag = uuid.uuid4().hex
    recorded = pipelines.numbers(count=2, tag=tag)
    out = login(team_server, "viewer")
    assert "viewer" in out

    with pytest.raises(StoreError) as refused:
        pipelines.numbers(count=2, tag=uuid.uuid4().hex)
    message = refused.value.message
    assert team_server.url in message
    assert "'editor' role" in message and "viewer" in message
    assert Client().get_pipeline_run(recorded.name).status == "completed"
    assert local_run_count(project) == 0


def test_the_server_runs_only_marked_operations_for_the_right_role(
    team_server: TeamServer,
) -> None:
    def call(name: str, role: str | None, arguments: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {team_server.keys[role]}"} if role else {}
        return httpx.post(
            f"{team_server.url}/api/v1/store/{name}",
            json={"arguments": arguments},
            headers=headers,
            timeout=30,
        )

    assert call("queries.counts", None, {}).status_code == 401
    assert call("queries.counts", "viewer", {}).status_code == 200
    assert call("metadata.heartbeat", "viewer", {"run_id": "x"}).status_code == 403
    assert call("metadata.heartbeat", "editor", {"run_id": "x"}).status_code == 200
    # The registry, secrets and users never leave a store; nothing else has a route.
    for name in ("queries.get_secret_row", "users.create_user", "metadata.write", "os.system"):
        assert call(name, "editor", {}).status_code == 404, name
    bad = call("queries.list_runs", "viewer", {"limit": "many"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "ValidationError"
    assert call("queries.list_runs", "viewer", {"limit": 10**30}).status_code == 422
    assert call("queries.counts", "viewer", {"extra": 1}).status_code == 422
    assert (
        call("queries.list_runs", "viewer", {"created_after": {"__datetime__": "x"}}).status_code
        == 422
    )
    missing = call("queries.find_run", "viewer", {"ref": "no-such-run"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFoundError"


def test_environment_variables_log_in_for_ci(
    team_server: TeamServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_SERVER_URL", team_server.url)
    monkeypatch.setenv("MLZEN_API_KEY", team_server.keys["editor"])
    run = pipelines.numbers(count=2, tag=uuid.uuid4().hex)
    assert queries.find_run(team_server.store(), run.id)["status"] == "completed"
    assert local_run_count(project) == 0


# -- the server goes away mid-run ---------------------------------------------------------


def start_gated(
    gate: Path, monkeypatch: pytest.MonkeyPatch, tag: str
) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``pipelines.gated`` in a thread and wait until its gate step waits in the new
    folder ``gate`` (it goes on once the test creates ``gate / "go"``).

    Returns the thread and a dict that gets the finished run (``run``) or what the run
    raised (``error``).
    """
    gate.mkdir()
    monkeypatch.setenv(pipelines.GATE_ENV, str(gate))
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["run"] = pipelines.gated(tag=tag)
        except BaseException as exc:
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 120
    while not (gate / "waiting").exists():
        assert driver.is_alive(), outcome
        assert time.monotonic() < deadline, "the gate step never started"
        time.sleep(0.05)
    return driver, outcome


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_run_whose_server_dies_fails_clearly_and_resumes_when_it_is_back(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", executor)
    server = _make_server(tmp_path / "dying", "sqlite")
    server.start()
    try:
        monkeypatch.setenv("MLZEN_LEASE_SECONDS", "1")
        monkeypatch.setenv("MLZEN_HEARTBEAT_INTERVAL", "0.2")
        login(server)
        gate = tmp_path / "gate"
        driver, outcome = start_gated(gate, monkeypatch, tag="x")
        server.kill()
        (gate / "go").touch()
        driver.join(timeout=300)
        assert not driver.is_alive()

        error = outcome["error"]
        assert isinstance(error, StoreError)
        name = error.fields["run_name"]
        assert f"Cannot reach the mlzen server at {server.url}" in error.message
        assert f"mlzen runs resume {name}" in error.message
        # Both finished steps' outputs are in the artifact store, though only the first
        # was recorded before the server died.
        store = server.store()
        run_id = queries.find_run(store, name)["id"]
        recorded = {r["step_id"]: r for r in queries.step_runs_of(store, run_id)}
        assert recorded["before_gate"]["status"] == "completed"
        assert recorded["gate"]["status"] == "running"
        from mlzen.artifacts.store import artifact_store_for

        artifacts = artifact_store_for(load_settings().artifact_root)
        assert len(artifacts.list_uris()) == 2
        opened = queries.edges_of(store, [recorded["before_gate"]["id"]])
        opened_version = opened[recorded["before_gate"]["id"]]["output"]["opened"]
        uri = queries.get_artifact_versions(store, [opened_version])[opened_version]["uri"]
        assert artifacts.exists(uri)

        server.start()
        code, out, err = run_main("runs", "resume", name)
        assert code == 0, err
        assert "completed" in out
        client = Client()
        assert client.get_pipeline_run(name).status == "crashed"
        resumed = client.get_pipeline_run("latest")
        assert resumed.resumed_from_id == run_id
        assert {s: r.status for s, r in resumed.steps.items()} == {
            "before_gate": "cached",
            "gate": "completed",
            "after_gate": "completed",
        }
        assert resumed.steps["after_gate"].outputs["done"].load() == "opened-x-passed-done"
    finally:
        server.stop()


def test_a_run_outlives_a_server_restart_shorter_than_its_lease(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _make_server(tmp_path / "restarting", "sqlite")
    server.start()
    try:
        monkeypatch.setenv("MLZEN_HEARTBEAT_INTERVAL", "0.2")  # beats are missed meanwhile
        login(server)
        gate = tmp_path / "gate"
        driver, finished = start_gated(gate, monkeypatch, tag="restart")
        server.kill()
        server.start()  # the same store, the same port
        (gate / "go").touch()
        driver.join(timeout=300)
        assert not driver.is_alive()

        assert "error" not in finished, finished.get("error")
        run = finished["run"]
        assert run.status == "completed"
        assert run.steps["after_gate"].outputs["done"].load() == "opened-restart-passed-done"
    finally:
        server.stop()


def test_the_server_refuses_steps_of_a_crashed_run_until_its_driver_takes_it_back(
    team_server: TeamServer, project: Path
) -> None:
    login(team_server)
    store = Client().store
    run_id = store.create_run(
        pipeline_name="leased",
        run_name=f"leased-{uuid.uuid4().hex}",
        spec={},
        parameters={},
        stack="local",
        code_version={},
        environment={},
        lease_seconds=0.3,
    )
    step_run_id = store.start_step_run(
        run_id=run_id,
        step_id="s",
        step_name="s",
        parameters={},
        config={},
        source="m:s",
        code_hash="c",
        cache_key=uuid.uuid4().hex,
        cache_key_parts={},
        inputs={},
    )
    deadline = time.monotonic() + 60
    while store.expire_stale_runs([run_id]) != [run_id]:
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)

    with pytest.raises(LeaseLostError) as refused:
        store.finish_step_run(step_run_id, status="completed")
    # The fields a worker needs to wait for its driver come back over HTTP.
    assert refused.value.reclaimable is True and refused.value.lease_seconds == 0.3
    assert refused.value.status == "crashed" and refused.value.run_id == run_id
    assert store.heartbeat(run_id) is True
    store.finish_step_run(step_run_id, status="completed")
    assert queries.get_step_run(store, step_run_id)["status"] == "completed"


def test_cli_commands_list_login_and_logout() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "login" in result.output and "logout" in result.output
