"""The S3 artifact store against a real HTTP S3 endpoint: moto's server, in its own process.

The server listens on 127.0.0.1 only and is stopped by its pid at the end of the session.
Credentials are dummies, given through the environment as a user would.
"""

from __future__ import annotations

import importlib.metadata
import math
import pickle
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

s3fs = pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from mlzen import Client, pipeline, step  # noqa: E402
from mlzen.artifacts import materializer  # noqa: E402
from mlzen.artifacts.fsspec import MARKER_SUFFIX  # noqa: E402
from mlzen.artifacts.hashing import hash_folder  # noqa: E402
from mlzen.artifacts.materializer import (  # noqa: E402
    Materializer,
    SavedArtifact,
    load_artifact,
    register_materializer,
    save_artifact,
)
from mlzen.artifacts.s3 import (  # noqa: E402
    MULTIPART_CHUNKSIZE,
    S3ArtifactStore,
    S3ArtifactStoreConfig,
    S3ArtifactStoreFlavor,
)
from mlzen.config import load_settings  # noqa: E402
from mlzen.errors import (  # noqa: E402
    ArtifactCorruptedError,
    ArtifactError,
    ConfigError,
    NotFoundError,
)
from mlzen.stack import Stack  # noqa: E402
from tests.integration.services import (  # noqa: E402
    CREDENTIALS,
    REGION,
    free_port,
    s3_client,
    start_moto,
    stop,
)

BUCKET = "mlzen-test"


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server holding the bucket ``BUCKET``."""
    server, url = start_moto(tmp_path_factory.mktemp("moto") / "server.log")
    try:
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        stop(server)


@pytest.fixture(scope="session")
def locked_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server that checks credentials (it knows none) once its bucket exists."""
    log = tmp_path_factory.mktemp("moto-locked") / "server.log"
    server, url = start_moto(log, INITIAL_NO_AUTH_ACTION_COUNT="1")
    try:
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        stop(server)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the environment, and nothing of the user's AWS set-up."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> materializer._Registry:
    """A materializer registry of this test's own (registrations, warnings)."""
    fresh = materializer._Registry()
    monkeypatch.setattr(materializer, "_registry", fresh)
    return fresh


@pytest.fixture
def store(endpoint: str, tmp_path: Path) -> S3ArtifactStore:
    """A store under a prefix of its own; credentials come from the environment."""
    return S3ArtifactStore(
        f"s3://{BUCKET}/{uuid.uuid4().hex}",
        endpoint_url=endpoint,
        region=REGION,
        cache_dir=tmp_path / "cache",
    )


@pytest.fixture
def uploads(store: S3ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The remote paths of every object the store writes from now on."""
    written: list[str] = []
    fs = store._fs
    put, pipe_file = fs.put, fs.pipe_file

    def counting_put(lpaths: list[str], rpaths: list[str], **kwargs: Any) -> Any:
        written.extend(rpaths)
        return put(lpaths, rpaths, **kwargs)

    def counting_pipe_file(path: str, value: bytes, **kwargs: Any) -> Any:
        written.append(path)
        return pipe_file(path, value, **kwargs)

    monkeypatch.setattr(fs, "put", counting_put)
    monkeypatch.setattr(fs, "pipe_file", counting_pipe_file)
    return written


def load(store: S3ArtifactStore, saved: SavedArtifact) -> Any:
    return load_artifact(
        store,
        uri=saved.uri,
        content_hash=saved.content_hash,
        materializer=saved.materializer,
        data_type=saved.data_type,
        name="value",
    )


def key_of(store: S3ArtifactStore, uri: str, relpath: str = "") -> str:
    """The S3 key of an artifact folder (or of a file in it) in ``BUCKET``."""
    key = uri.removeprefix(f"s3://{BUCKET}/")
    return f"{key}/{relpath}" if relpath else key


# -- the contract of an artifact store ------------------------------------------------------


class Point:
    """No materializer handles it: the cloudpickle fallback does."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x

    __hash__ = None  # type: ignore[assignment]


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    pd.testing.assert_frame_equal(a, b)
    return True


def series_equal(a: pd.Series, b: pd.Series) -> bool:
    pd.testing.assert_series_equal(a, b)
    return True


BUILTIN_VALUES: list[tuple[str, Any, Callable[[Any, Any], bool]]] = [
    ("none", None, lambda a, b: a is None),
    ("bool", True, lambda a, b: a is True),
    ("int", -(2**70), lambda a, b: type(a) is int and a == b),
    ("float", 0.1, lambda a, b: type(a) is float and a == b),
    ("str", "naïve ☃", lambda a, b: a == b),
    ("list", [1, None, "x"], lambda a, b: a == b),
    ("tuple", (1, "a", [2]), lambda a, b: type(a) is tuple and a == b),
    ("dict", {"a": {"b": [1.5]}}, lambda a, b: a == b),
    ("bytes", b"\x00\xff" * 100, lambda a, b: type(a) is bytes and a == b),
    ("bytearray", bytearray(b"abc"), lambda a, b: type(a) is bytearray and a == b),
    ("ndarray", np.arange(12.0).reshape(3, 4), lambda a, b: np.array_equal(a, b)),
    ("numpy scalar", np.float32(1.5), lambda a, b: type(a) is np.float32 and a == b),
    (
        "DataFrame",
        pd.DataFrame({"a": [1, 2, None], "b": ["x", "y", "z"]}, index=pd.Index([3, 4, 5])),
        frames_equal,
    ),
    ("Series", pd.Series([1.0, 2.0], name="s"), series_equal),
    ("Table", pa.table({"a": [1, 2], "b": ["x", None]}), lambda a, b: a.equals(b)),
    ("pickled", Point(3), lambda a, b: a == b),
]


@pytest.mark.parametrize(
    ("value", "same"),
    [(value, same) for _, value, same in BUILTIN_VALUES],
    ids=[name for name, _, _ in BUILTIN_VALUES],
)
def test_every_builtin_materializer_round_trips(
    store: S3ArtifactStore, registry: materializer._Registry, value: Any, same: Callable
) -> None:
    if isinstance(value, Point):
        with pytest.warns(UserWarning, match="cloudpickle"):
            saved = save_artifact(store, value, name="value")
    else:
        saved = save_artifact(store, value, name="value")

    assert saved.uri == f"{store.root}/{saved.content_hash[:2]}/{saved.content_hash}"
    assert store.exists(saved.uri)
    assert store.list_uris() == [saved.uri]
    assert same(load(store, saved), value)


def test_identical_values_are_uploaded_once(store: S3ArtifactStore, uploads: list[str]) -> None:
    first = save_artifact(store, {"weights": [1, 2, 3]}, name="a")
    written = list(uploads)
    second = save_artifact(store, {"weights": [1, 2, 3]}, name="b")

    assert second.uri == first.uri
    assert uploads == written  # the second save wrote nothing
    assert written == [
        f"{BUCKET}/{key_of(store, first.uri, 'data.json')}",
        f"{BUCKET}/{key_of(store, first.uri)}{MARKER_SUFFIX}",
    ]
    assert store.list_uris() == [first.uri]


def test_a_large_array_goes_up_in_parts_and_comes_back(
    store: S3ArtifactStore, endpoint: str
) -> None:
    array = np.random.default_rng(0).random(9_000_000)  # 72 MB
    assert array.nbytes > 64 * 1024 * 1024

    saved = save_artifact(store, array, name="big")

    head = s3_client(endpoint).head_object(Bucket=BUCKET, Key=key_of(store, saved.uri, "data.npy"))
    parts = math.ceil(head["ContentLength"] / MULTIPART_CHUNKSIZE)
    assert head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart upload's ETag
    assert parts >= 4
    loaded = load(store, saved)
    assert np.array_equal(loaded, array)


def test_a_corrupted_object_is_refused_naming_the_uri(
    store: S3ArtifactStore, endpoint: str
) -> None:
    saved = save_artifact(store, "original", name="text")
    s3_client(endpoint).put_object(
        Bucket=BUCKET, Key=key_of(store, saved.uri, "data.json"), Body=b'"tampered"'
    )

    with pytest.raises(ArtifactCorruptedError) as caught:
        load(store, saved)

    assert saved.uri in str(caught.value)
    assert caught.value.artifact_uri == saved.uri
    assert not (store.cache_dir / saved.content_hash).exists()  # nothing unverified kept


class TwoFiles(Materializer):
    """Writes each half of a string to a file of its own."""

    def save(self, value: Any, folder: Path) -> None:
        (folder / "first.txt").write_text(value[: len(value) // 2])
        (folder / "second").mkdir()
        (folder / "second" / "half.txt").write_text(value[len(value) // 2 :])

    def load(self, folder: Path, data_type: str) -> Any:
        return (folder / "first.txt").read_text() + (folder / "second" / "half.txt").read_text()


def test_an_interrupted_publish_is_absent_until_a_publish_completes_it(
    store: S3ArtifactStore,
    endpoint: str,
    uploads: list[str],
    registry: materializer._Registry,
    tmp_path: Path,
) -> None:
    register_materializer(str)(TwoFiles)
    value = "interrupted upload"
    # What a publish that died after its first file leaves behind: no marker.
    staged = tmp_path / "staged"
    staged.mkdir()
    TwoFiles().save(value, staged)
    content_hash, _ = hash_folder(staged)
    uri = f"{store.root}/{content_hash[:2]}/{content_hash}"
    s3_client(endpoint).put_object(
        Bucket=BUCKET,
        Key=key_of(store, uri, "first.txt"),
        Body=(staged / "first.txt").read_bytes(),
    )

    assert not store.exists(uri)
    assert store.list_uris() == []
    with pytest.raises(NotFoundError):
        store.local_path(uri, content_hash)
    assert [leftover.path for leftover in store.list_leftovers()] == [uri]

    saved = save_artifact(store, value, name="text")

    assert saved.uri == uri
    assert uploads == [  # only what was missing, then the marker
        f"{BUCKET}/{key_of(store, uri, 'second/half.txt')}",
        f"{BUCKET}/{key_of(store, uri)}{MARKER_SUFFIX}",
    ]
    assert store.exists(uri)
    assert store.list_uris() == [uri]
    assert store.list_leftovers() == []
    assert load(store, saved) == value


def test_deleting_removes_the_marker_first(store: S3ArtifactStore, endpoint: str) -> None:
    saved = save_artifact(store, [1, 2], name="x")
    client = s3_client(endpoint)
    client.delete_object(Bucket=BUCKET, Key=f"{key_of(store, saved.uri)}{MARKER_SUFFIX}")

    # A delete interrupted right after its first request: absent, and a leftover.
    assert not store.exists(saved.uri)
    assert [leftover.path for leftover in store.list_leftovers()] == [saved.uri]
    store.delete_leftover(saved.uri)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=key_of(store, saved.uri))
    assert listed["KeyCount"] == 0

    again = save_artifact(store, [1, 2], name="x")
    store.delete(again.uri)
    assert not store.exists(again.uri)
    assert store.list_uris() == [] and store.list_leftovers() == []


# -- errors at the boundary -------------------------------------------------------------------


def test_a_missing_bucket_is_named_by_check_and_by_save(endpoint: str) -> None:
    store = S3ArtifactStore("s3://no-such-bucket/artifacts", endpoint_url=endpoint)

    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket' does not exist") as caught:
        store.check()
    assert caught.value.bucket == "no-such-bucket"
    assert caught.value.endpoint_url == endpoint
    assert "aws s3 mb s3://no-such-bucket" in str(caught.value)

    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket' does not exist"):
        save_artifact(store, [1], name="x")
    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket' does not exist"):
        store.exists(f"{store.root}/ab/{'ab' * 32}")
    buckets = [b["Name"] for b in s3_client(endpoint).list_buckets()["Buckets"]]
    assert "no-such-bucket" not in buckets  # never created behind the user's back


def test_check_passes_on_a_writable_bucket_and_leaves_nothing(
    store: S3ArtifactStore, endpoint: str
) -> None:
    store.check()

    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=key_of(store, store.root))
    assert listed["KeyCount"] == 0


def test_refused_credentials_are_named_with_the_fix(locked_endpoint: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(
        f"s3://{BUCKET}/x",
        endpoint_url=locked_endpoint,
        key="AKIAWRONGWRONGWRONG",
        secret="wrong",
        cache_dir=tmp_path,
    )

    with pytest.raises(ArtifactError, match="refused") as caught:
        store.check()
    assert BUCKET in str(caught.value) and locked_endpoint in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)
    with pytest.raises(ArtifactError, match="refused"):
        save_artifact(store, [1], name="x")
    assert "wrong" not in repr(store) + repr(store.config)


def test_an_unreachable_endpoint_is_named(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3ArtifactStore(f"s3://{BUCKET}/x", endpoint_url=endpoint, cache_dir=tmp_path)

    with pytest.raises(ArtifactError, match="Cannot reach the S3 endpoint") as caught:
        store.check()
    assert endpoint in str(caught.value) and "endpoint_url" in str(caught.value)


def test_without_s3fs_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    store = S3ArtifactStore(f"s3://{BUCKET}/x")
    monkeypatch.setitem(sys.modules, "s3fs", None)

    with pytest.raises(ArtifactError, match=r'pip install "mlzen\[s3\]"'):
        store.exists(f"{store.root}/ab/{'ab' * 32}")


# -- configuration and flavor ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "option", "reason"),
    [
        ({"path": "bucket/prefix"}, "path", "is not an S3 location"),
        ({"path": "s3://Bad_Bucket/x"}, "path", "valid bucket name"),
        ({"path": "s3://bucket//x"}, "path", "empty"),
        ({"path": "s3://bucket", "endpoint_url": "127.0.0.1:9000"}, "endpoint_url", "http"),
        ({"path": "s3://bucket", "key": "AKIA"}, "config", "key and secret go together"),
        ({"path": "s3://bucket", "endpoint": "http://x"}, "endpoint", "has no option"),
        ({}, "path", "required"),
    ],
)
def test_invalid_config_is_refused_naming_the_option(
    fields: dict[str, Any], option: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        S3ArtifactStoreFlavor().build(fields)
    assert caught.value.option == option
    assert f"'{option}'" in str(caught.value)


def test_the_store_validates_its_arguments_alike() -> None:
    with pytest.raises(ConfigError, match="Invalid option 'path'.*S3ArtifactStore"):
        S3ArtifactStore("/local/folder")


def test_config_normalises_and_hides_credentials() -> None:
    config = S3ArtifactStoreConfig(
        path="s3://bucket/some/prefix/",
        endpoint_url="http://127.0.0.1:9000/",
        key="AKIAEXAMPLE",
        secret="very-secret",
    )

    assert config.path == "s3://bucket/some/prefix" and config.bucket == "bucket"
    assert config.endpoint_url == "http://127.0.0.1:9000"
    assert "very-secret" not in repr(config) and "AKIAEXAMPLE" not in repr(config)
    assert S3ArtifactStoreConfig(path="s3://bucket").key is None  # from the environment


def test_the_flavor_is_registered_and_builds_the_store(endpoint: str) -> None:
    found = importlib.metadata.entry_points(group="mlzen.flavors")["artifact_store.s3"]
    flavor = found.load()
    assert flavor is S3ArtifactStoreFlavor
    assert (flavor.kind, flavor.name) == ("artifact_store", "s3")

    config = flavor.config_class.model_validate(
        {"path": f"s3://{BUCKET}/built", "endpoint_url": endpoint, "region": REGION}
    )
    store = flavor().build(config)

    assert isinstance(store, S3ArtifactStore)
    assert store.root == f"s3://{BUCKET}/built" and store.bucket == BUCKET
    store.check()


def test_the_store_travels_to_another_process(store: S3ArtifactStore, tmp_path: Path) -> None:
    """As a Ray task or a worker process receives it: pickled, without its connection."""
    saved = save_artifact(store, {"from": "parent"}, name="x")
    opened = store._fs  # connected here
    assert opened is not None
    (tmp_path / "store.pkl").write_bytes(pickle.dumps((store, saved)))
    script = textwrap.dedent(
        f"""
        import pickle
        from mlzen.artifacts.materializer import load_artifact
        store, saved = pickle.loads(open({str(tmp_path / "store.pkl")!r}, "rb").read())
        assert store._filesystem is None
        print(load_artifact(store, uri=saved.uri, content_hash=saved.content_hash,
            materializer=saved.materializer, data_type=saved.data_type, name="x"))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'from': 'parent'}"


# -- a pipeline on the S3 store ---------------------------------------------------------------

calls: list[str] = []


@step
def make_frame(rows: int = 50) -> pd.DataFrame:
    calls.append("make_frame")
    return pd.DataFrame({"x": np.arange(rows), "y": np.arange(rows) * 2.0})


@step
def fit(frame: pd.DataFrame) -> np.ndarray:
    calls.append("fit")
    return np.polyfit(frame["x"], frame["y"], 1)


@step
def report(frame: pd.DataFrame, coefficients: np.ndarray) -> dict:
    calls.append("report")
    return {"rows": len(frame), "slope": round(float(coefficients[0]), 6)}


@pipeline
def s3_pipeline(rows: int = 50) -> None:
    frame = make_frame(rows=rows)
    report(frame, fit(frame))


def test_a_pipeline_runs_on_the_s3_store_and_its_cached_rerun_does_no_work(
    store: S3ArtifactStore, uploads: list[str]
) -> None:
    calls.clear()
    client = Client(Stack(load_settings(), artifact_store=store))

    run = client.run_pipeline(*s3_pipeline.build())

    assert run.status == "completed"
    assert sorted(calls) == ["fit", "make_frame", "report"]
    outputs = {name: s.outputs["output"] for name, s in run.steps.items()}
    assert all(v.uri.startswith(store.root + "/") for v in outputs.values())
    assert outputs["report"].load() == {"rows": 50, "slope": 2.0}
    assert np.allclose(outputs["fit"].load(), [2.0, 0.0])
    assert list(outputs["make_frame"].load().columns) == ["x", "y"]
    visuals = outputs["make_frame"].visualizations  # the frame's preview and histograms
    folders = {v.uri.rpartition("/")[0] for v in visuals}
    assert sorted(store.list_uris()) == sorted({v.uri for v in outputs.values()} | folders)

    calls.clear()
    uploads.clear()
    again = client.run_pipeline(*s3_pipeline.build())

    assert {s.status for s in again.steps.values()} == {"cached"}
    assert calls == []
    # The only write: the stack's check() before the run, which deletes its probe.
    assert [path for path in uploads if "/.staging/check-" not in path] == []
    assert again.steps["report"].outputs["output"].load() == {"rows": 50, "slope": 2.0}


def test_visualizations_are_stored_read_and_collected_on_s3(store: S3ArtifactStore) -> None:
    from mlzen.gc import collect_garbage

    client = Client(Stack(load_settings(), artifact_store=store))
    run = client.run_pipeline(*s3_pipeline.with_options(enable_cache=False).build(rows=7))
    version = run.steps["make_frame"].outputs["output"]
    visuals = {v.name: v for v in version.visualizations}
    assert sorted(visuals) == ["histograms", "preview"]
    folder = visuals["preview"].uri.rpartition("/")[0]
    assert folder.startswith(store.root + "/") and folder in store.list_uris()
    assert visuals["histograms"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "7 rows, 2 columns" in visuals["preview"].read_bytes().decode()
    assert visuals["preview"].path.is_relative_to(store.cache_dir)

    assert collect_garbage(client, min_age=0).count == 0  # referenced: kept
    client.store.delete_run(run.id)
    # Nothing is referenced now, which gc refuses unless forced (a mistyped store URL
    # looks the same).
    report = collect_garbage(client, min_age=0, force=True)
    assert folder in {g.uri for g in report.garbage}
    assert folder not in store.list_uris()


def test_worker_processes_write_to_the_same_s3_store(
    store: S3ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process receives the whole store (endpoint and credentials), not its URL."""
    monkeypatch.setenv("MLZEN_EXECUTOR", "processes")
    client = Client(Stack(load_settings(), artifact_store=store))
    run = client.run_pipeline(*s3_pipeline.with_options(enable_cache=False).build())
    assert run.status == "completed"
    outputs = {name: s.outputs["output"] for name, s in run.steps.items()}
    assert all(v.uri.startswith(store.root + "/") for v in outputs.values())
    assert outputs["report"].load() == {"rows": 50, "slope": 2.0}
