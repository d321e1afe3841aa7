"""Corruption is repaired by rerunning (issue 10, D).

A stored artifact whose files were changed, truncated or deleted must neither be reused
by a rerun that writes the same content (dedupe) nor count as a cache hit: rerunning the
step repairs it. Each case runs on the local store, on an fsspec store (memory://) and on
S3 (moto's server), with the metadata store on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from mlzen import Client, pipeline, step
from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.store import ArtifactStore
from mlzen.config import load_settings
from mlzen.explain import OUTPUTS_MISSING, explain_step
from mlzen.stack import Stack

PAYLOAD = list(range(2_000))


@step
def produce(rows: int = 2_000) -> Annotated[list, "numbers"]:
    return list(range(rows))


@pipeline
def numbers_pipeline(rows: int = 2_000):
    produce(rows=rows)


# -- the artifact stores ------------------------------------------------------------------


class Remote:
    """Reads and writes the files of an artifact behind the store's back."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def files(self, uri: str) -> dict[str, bytes]:
        if isinstance(self.store, LocalArtifactStore):
            folder = Path(uri)
            return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")}
        assert isinstance(self.store, FsspecArtifactStore)
        path = self.store._path(uri)
        found = self.store._fs.find(path)
        return {name[len(path) + 1 :]: self.store._fs.cat_file(name) for name in found}

    def write(self, uri: str, relpath: str, data: bytes) -> None:
        if isinstance(self.store, LocalArtifactStore):
            (Path(uri) / relpath).write_bytes(data)
        else:
            assert isinstance(self.store, FsspecArtifactStore)
            self.store._fs.pipe_file(f"{self.store._path(uri)}/{relpath}", data)

    def remove(self, uri: str, relpath: str) -> None:
        if isinstance(self.store, LocalArtifactStore):
            (Path(uri) / relpath).unlink()
        else:
            assert isinstance(self.store, FsspecArtifactStore)
            self.store._fs.rm_file(f"{self.store._path(uri)}/{relpath}")


def _local(tmp_path: Path) -> Iterator[ArtifactStore]:
    yield LocalArtifactStore(tmp_path / "artifacts")


def _memory(tmp_path: Path) -> Iterator[ArtifactStore]:
    store = FsspecArtifactStore(f"memory://faults-{uuid.uuid4().hex}", cache_dir=tmp_path / "c")
    yield store
    if store._fs.exists(store._root_path):  # a skipped case wrote nothing
        store._fs.rm(store._root_path, recursive=True)


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from tests.integration.services import s3_client, start_moto, stop

    server, url = start_moto(tmp_path_factory.mktemp("moto") / "server.log")
    try:
        s3_client(url).create_bucket(Bucket="faults")
        yield url
    finally:
        stop(server)


@pytest.fixture(params=["local", "memory", "s3"])
def artifacts(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ArtifactStore]:
    """The artifact store of the case, also the one the pipeline runs write to."""
    if request.param == "s3":
        from mlzen.artifacts.s3 import S3ArtifactStore
        from tests.integration.services import CREDENTIALS, REGION

        endpoint = request.getfixturevalue("moto_endpoint")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        yield S3ArtifactStore(
            f"s3://faults/{uuid.uuid4().hex}",
            endpoint_url=endpoint,
            region=REGION,
            cache_dir=tmp_path / "cache",
        )
        return
    yield from {"local": _local, "memory": _memory}[request.param](tmp_path)


@pytest.fixture
def client(artifacts: ArtifactStore, store_backend: str) -> Client:
    return Client(Stack(load_settings(), artifact_store=artifacts))


def run(client: Client, *, cache: bool = True) -> Any:
    """A run of ``numbers_pipeline``; ``cache=False`` as ``mlzen run --no-cache``."""
    spec, steps = numbers_pipeline.with_options(enable_cache=None if cache else False).build()
    return client.run_pipeline(spec, steps)


Damage = Callable[[Remote, str, str, bytes], None]


def _flip_a_byte(remote: Remote, uri: str, relpath: str, data: bytes) -> None:
    remote.write(uri, relpath, data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])


def _truncate(remote: Remote, uri: str, relpath: str, data: bytes) -> None:
    remote.write(uri, relpath, data[: len(data) // 2])


def _delete(remote: Remote, uri: str, relpath: str, data: bytes) -> None:
    remote.remove(uri, relpath)


def _add_a_file(remote: Remote, uri: str, relpath: str, data: bytes) -> None:
    remote.write(uri, "stray.bin", b"not part of the artifact")


DAMAGES = {
    "changed": _flip_a_byte,
    "truncated": _truncate,
    "deleted": _delete,
    "added": _add_a_file,
}


def _damage(client: Client, how: str) -> tuple[Remote, str, dict[str, bytes]]:
    """Damage the stored ``numbers`` artifact; returns its uri and its intact files."""
    version = client.get_artifact_version("numbers")
    remote = Remote(client.stack.artifact_store)
    intact = remote.files(version.uri)
    relpath, data = next(iter(sorted(intact.items())))
    DAMAGES[how](remote, version.uri, relpath, data)
    assert remote.files(version.uri) != intact
    return remote, version.uri, intact


# -- D1: a rerun with caching off repairs the artifact ---------------------------------------


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_a_no_cache_rerun_repairs_a_corrupted_artifact(client: Client, how: str) -> None:
    first = run(client)
    remote, uri, intact = _damage(client, how)

    again = run(client, cache=False)

    assert again.steps["produce"].status == "completed"
    repaired = again.steps["produce"].outputs["numbers"]
    assert repaired.uri == uri  # same content, same place: repaired there
    assert remote.files(uri) == intact
    assert repaired.load() == PAYLOAD
    # The first run's version names the same content, so it is readable again too.
    assert first.steps["produce"].outputs["numbers"].load() == PAYLOAD


# -- D2: a folder whose files were deleted or truncated is no cache hit ---------------------


@pytest.mark.parametrize("how", ["deleted", "truncated", "added"])
def test_a_damaged_output_is_not_a_cache_hit(client: Client, how: str) -> None:
    run(client)
    remote, uri, intact = _damage(client, how)

    again = run(client)

    assert again.steps["produce"].status == "completed"
    assert again.steps["produce"].outputs["numbers"].load() == PAYLOAD
    assert remote.files(uri) == intact
    assert run(client).steps["produce"].status == "cached"  # and is reused once repaired


def test_explain_names_a_damaged_output(client: Client) -> None:
    run(client)
    _damage(client, "deleted")

    again = run(client)

    explanation = explain_step(client, again.id, "produce")
    assert explanation.reason == OUTPUTS_MISSING
    assert explanation.missing_outputs == []  # repaired by this very run
