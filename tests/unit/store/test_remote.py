"""The remote store's parts that need no server: the wire format, the whitelist of
operations, URLs and keys, settings, and which store a project opens.

Calls over HTTP to a real server are tested in ``tests/integration/test_remote.py``.
"""

from __future__ import annotations

import math
import pickle
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlzen.config import load_settings
from mlzen.errors import ConfigError, StoreError
from mlzen.stack import Stack
from mlzen.store import open_metadata_store, queries, runs_store_url
from mlzen.store.metadata import MetadataStore, OutputRecord, safe_url
from mlzen.store.operations import OPERATIONS, decode, encode, remote_read
from mlzen.store.remote import (
    RemoteMetadataStore,
    check_server_url,
    close_connections,
    split_key,
    url_with_key,
)
from tests.integration.services import free_port

KEY = "mlzen_abcDEF-_123"


@pytest.fixture(autouse=True)
def closed_connections() -> Any:
    yield
    close_connections()


# -- the wire format ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        "text",
        1.5,
        datetime(2026, 11, 27, 5, 12, 37, 123456),
        datetime(2026, 11, 27, tzinfo=UTC),
        date(2026, 11, 27),
        Decimal("12.50"),
        {"nested": [1, {"at": datetime(2020, 1, 1)}]},
        {"__datetime__": "not a date, a user's key"},
        {"__dict__": {"__float__": "nan"}},
        [{"__decimal__": 1}],
    ],
)
def test_encoded_values_come_back_equal_and_of_the_same_type(value: Any) -> None:
    import json

    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    assert back == value
    assert type(back) is type(value)


def test_non_finite_floats_travel_as_strict_json() -> None:
    import json

    text = json.dumps(encode([math.nan, math.inf, -math.inf]), allow_nan=False)
    nan, inf, minus_inf = decode(json.loads(text))
    assert math.isnan(nan) and inf == math.inf and minus_inf == -math.inf


def test_iterables_and_dataclasses_become_lists_and_dicts() -> None:
    record = OutputRecord("out", "file:///a", "h", "m", "int", 3, {"k": 1})
    assert encode({"ids": {"a": "x"}.values(), "t": (1, 2), "r": record}) == {
        "ids": ["x"],
        "t": [1, 2],
        "r": {
            "name": "out",
            "uri": "file:///a",
            "content_hash": "h",
            "materializer": "m",
            "data_type": "int",
            "size": 3,
            "metadata": {"k": 1},
            "visualizations": [],
            "artifact_store_id": None,
            "files": None,
        },
    }


def test_the_server_binds_arguments_back_into_their_declared_types(project: Path) -> None:
    from mlzen.server.routes.store import _Binder

    record = OutputRecord("out", "u", "h", "m", "int", 3, {}, (("hist", "image", "u/h.png"),))
    sent = OPERATIONS["metadata.finish_step_run"].arguments(
        ("step-run-id",), {"status": "completed", "outputs": [record]}
    )
    store = MetadataStore(load_settings().store_url)
    bound = _Binder(OPERATIONS["metadata.finish_step_run"]).bind(store, decode(encode(sent)))
    [output] = bound.arguments["outputs"]
    assert isinstance(output, OutputRecord)
    assert (output.name, output.size, output.metadata) == ("out", 3, {})
    assert list(output.visualizations) == [("hist", "image", "u/h.png")]
    before = _Binder(OPERATIONS["queries.previous_step_run"]).bind(
        store,
        decode(encode({"run_id": "r", "step_id": "s", "step_name": "n", "before": datetime.now()})),
    )
    assert isinstance(before.arguments["before"], datetime)
    with pytest.raises(ValueError, match="int"):
        _Binder(OPERATIONS["queries.list_runs"]).bind(store, {"limit": "many"})


def test_values_that_cannot_travel_are_refused() -> None:
    with pytest.raises(TypeError, match="int key"):
        encode({1: "x"})
    with pytest.raises(TypeError, match="object"):
        encode(object())


# -- which operations a server runs -------------------------------------------------------


def test_reads_and_writes_are_marked_and_the_registry_and_secrets_are_not() -> None:
    import mlzen.store.users  # noqa: F401 - registers nothing, which is the point

    assert OPERATIONS["metadata.create_run"].role == "editor"
    assert not OPERATIONS["metadata.create_run"].idempotent
    assert OPERATIONS["metadata.heartbeat"].idempotent
    assert OPERATIONS["metadata.expire_stale_runs"].role == "viewer"
    assert OPERATIONS["queries.list_runs"].role == "viewer"
    for name in OPERATIONS:
        assert not name.startswith("users."), name
        assert name.partition(".")[2] not in {
            "get_project_setting",
            "list_components",
            "get_component",
            "list_stacks",
            "get_stack",
            "list_secret_rows",
            "get_secret_row",
        }, name


def test_arguments_are_bound_by_name_without_the_store() -> None:
    operation = OPERATIONS["queries.list_runs"]
    assert operation.arguments((), {"pipeline": "p", "limit": 2}) == {"pipeline": "p", "limit": 2}
    with pytest.raises(TypeError):
        operation.arguments((), {"no_such_argument": 1})


def test_an_operation_needs_the_store_first_and_no_star_args() -> None:
    with pytest.raises(TypeError, match="no \\*args"):

        @remote_read
        def spread(*stores: Any) -> None: ...


def test_two_operations_cannot_share_a_name() -> None:
    def list_runs(store: Any) -> None: ...

    list_runs.__module__ = "mlzen.elsewhere.queries"
    with pytest.raises(TypeError, match="Two remote store operations are named queries.list_runs"):
        remote_read(list_runs)
    assert OPERATIONS["queries.list_runs"].function.__module__ == "mlzen.store.queries"


def test_a_marked_query_still_runs_locally_on_a_sql_store(project: Path) -> None:
    store = MetadataStore(load_settings().store_url)
    assert queries.counts(store)["runs"] == 0


# -- URLs and keys ------------------------------------------------------------------------


def test_the_store_url_carries_the_key_which_is_never_shown() -> None:
    url = url_with_key("http://127.0.0.1:8237/", KEY)
    assert split_key(url) == ("http://127.0.0.1:8237", KEY)
    assert KEY not in safe_url(url)
    store = RemoteMetadataStore(url)
    assert store.server_url == "http://127.0.0.1:8237"
    assert KEY not in repr(store)
    copy = pickle.loads(pickle.dumps(store))  # as a worker process gets it
    assert copy.url == store.url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///x.db", "not an mlzen server URL"),
        ("127.0.0.1:8237", "not an mlzen server URL"),
        ("http://user:pw@host:1", "without credentials"),
        ("http://host:port", "port that is not a number"),
    ],
)
def test_bad_server_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        check_server_url(url)


def test_a_store_without_a_key_says_how_to_log_in() -> None:
    with pytest.raises(ConfigError, match="mlzen login http://h:1 --api-key KEY"):
        RemoteMetadataStore("http://h:1")


def test_a_server_that_does_not_answer_is_named_in_the_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = RemoteMetadataStore(url, KEY, retry_delays=(0.01,))
    with pytest.raises(StoreError, match=f"Cannot reach the mlzen server at {url}"):
        queries.list_runs(store)


class _NotMlzen(BaseHTTPRequestHandler):
    """A web server that is not an mlzen server: HTML for everything, or a redirect."""

    def _answer(self) -> None:
        if self.path.startswith("/moved"):
            self.send_response(301)
            self.send_header("Location", "https://elsewhere.example/")
            self.end_headers()
            return
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotMlzen)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_web_server_that_is_not_mlzen_is_named_as_such(web_server: str) -> None:
    store = RemoteMetadataStore(web_server, KEY, retry_delays=())
    with pytest.raises(StoreError, match="not an mlzen user"):
        store.whoami()
    with pytest.raises(StoreError, match="not an mlzen store result"):
        queries.counts(store)
    moved = RemoteMetadataStore(f"{web_server}/moved", KEY, retry_delays=())
    with pytest.raises(StoreError, match="redirects .* to https://elsewhere.example"):
        queries.counts(moved)


def test_direct_database_access_on_a_server_store_is_refused() -> None:
    store = RemoteMetadataStore("http://127.0.0.1:1", KEY)
    with pytest.raises(StoreError, match="@remote_read"), store.read():
        pass
    with pytest.raises(StoreError, match="mlzen logout"), store.write():
        pass
    # An unmarked store function (the stack registry's) names itself.
    with pytest.raises(StoreError, match="'mlzen.store.queries.list_stacks' needs a direct"):
        queries.list_stacks(store)


# -- settings and which store a project opens ----------------------------------------------


def test_a_project_opens_its_own_store_until_it_logs_in(project: Path) -> None:
    settings = load_settings()
    assert runs_store_url(settings) == settings.store_url
    assert type(Stack(settings).metadata_store) is MetadataStore

    (project / ".mlzen" / "credentials.yaml").write_text(
        f"server_url: http://127.0.0.1:8237\napi_key: {KEY}\n"
    )
    settings = load_settings()
    assert settings.server_url == "http://127.0.0.1:8237"
    assert KEY not in repr(settings)
    store = Stack(settings).metadata_store
    assert isinstance(store, RemoteMetadataStore)
    assert store.server_url == "http://127.0.0.1:8237"
    # The registry and secrets stay in the project's own store.
    assert settings.store_url.startswith("sqlite:///")


def test_a_stack_with_a_registered_metadata_store_keeps_it_after_login(project: Path) -> None:
    from mlzen.stack import load_stack
    from mlzen.stack_registry import register_component, register_stack

    other = f"sqlite:///{project / 'team.db'}"
    register_component("metadata_store", "team", "sql", {"url": other})
    register_stack("own-store", {"metadata_store": "team"})
    register_stack("server-store", {"orchestrator": "local"})
    (project / ".mlzen" / "credentials.yaml").write_text(
        f"server_url: http://127.0.0.1:8237\napi_key: {KEY}\n"
    )
    own = load_stack("own-store").metadata_store
    assert type(own) is MetadataStore and own.url == other
    assert isinstance(load_stack("server-store").metadata_store, RemoteMetadataStore)


def test_the_environment_wins_over_the_login(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".mlzen" / "credentials.yaml").write_text(
        f"server_url: http://127.0.0.1:8237\napi_key: {KEY}\n"
    )
    monkeypatch.setenv("MLZEN_SERVER_URL", "http://ci.example:9000")
    monkeypatch.setenv("MLZEN_API_KEY", "mlzen_from_ci")
    store = open_metadata_store(runs_store_url(load_settings()))
    assert isinstance(store, RemoteMetadataStore)
    assert split_key(store.url) == ("http://ci.example:9000", "mlzen_from_ci")


def test_a_server_url_without_a_key_takes_the_settings_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLZEN_API_KEY", KEY)
    store = open_metadata_store("http://127.0.0.1:8237")
    assert isinstance(store, RemoteMetadataStore)
    assert split_key(store.url)[1] == KEY


def test_an_api_key_in_config_yaml_is_refused(project: Path) -> None:
    (project / ".mlzen" / "config.yaml").write_text(f"api_key: {KEY}\n")
    with pytest.raises(ConfigError, match="mlzen login") as refused:
        load_settings()
    assert KEY not in refused.value.message
