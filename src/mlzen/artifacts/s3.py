"""The S3 artifact store (``mlzen[s3]``): the fsspec store on ``s3fs``, configured.

Works with AWS and with any S3-compatible endpoint (MinIO, Ceph, moto, ...). The layout,
the completion markers that make a publish atomic, and the hash check on every read are
those of :mod:`mlzen.artifacts.fsspec`. What this module adds:

- a pydantic config for the stack registry (``mlzen component register artifact_store
  NAME --flavor s3 --path s3://bucket/prefix ...``), whose credentials are optional:
  left out, botocore reads the environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ...); the registry
  resolves ``{{ secrets.NAME.key }}`` references into them before building the store;
- large files uploaded in parts (:data:`MULTIPART_CHUNKSIZE`), several at a time;
- errors at the boundary: a missing bucket, refused or absent credentials and an
  unreachable endpoint become an :class:`~mlzen.errors.ArtifactError` naming the bucket,
  the endpoint and the fix, and :meth:`S3ArtifactStore.check` finds them before a run.

``s3fs`` is imported on first use, so importing this module costs only pydantic.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.store import FolderStat, Leftover, StoredArtifact
from mlzen.errors import ArtifactError, MlzenError
from mlzen.flavors import Flavor

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from mlzen.artifacts.hashing import FileEntry

#: Part size of multipart uploads: files from twice this size on go up in parts.
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
#: S3 accepts at most this many parts per object; larger files get larger parts.
MAX_PARTS = 10_000
INSTALL_HINT = 'pip install "mlzen[s3]"'

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3ArtifactStoreConfig(BaseModel):
    """The configuration of an S3 artifact store.

    Attributes:
        path: Where artifacts go: ``s3://bucket`` or ``s3://bucket/prefix``.
        endpoint_url: An S3-compatible endpoint (``http://127.0.0.1:9000``); ``None``
            for AWS.
        region: The bucket's region (``eu-west-1``); ``None`` for botocore's default.
        key: Access key id; ``None`` to take credentials from the environment.
        secret: Secret access key; given together with ``key``.
        token: Session token of temporary credentials.
        client_kwargs: More keyword arguments for the botocore client.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    endpoint_url: str | None = None
    region: str | None = None
    key: str | None = Field(default=None, repr=False)
    secret: str | None = Field(default=None, repr=False)
    token: str | None = Field(default=None, repr=False)
    client_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        path = value.strip().rstrip("/")
        bucket, _, prefix = path.removeprefix("s3://").partition("/")
        if not path.startswith("s3://") or not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"{value!r} is not an S3 location. Write it as s3://bucket or "
                "s3://bucket/prefix, with a valid bucket name (3 to 63 lower-case letters, "
                "digits, dots and hyphens)"
            )
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ValueError(
                f"the prefix of {value!r} has an empty, '.' or '..' part. Write it as "
                "s3://bucket/some/prefix"
            )
        return path

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError(
                f"{value!r} is not an endpoint URL. Write it as http://host:port or "
                "https://host, or leave it out for AWS"
            )
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty. Give a region such as eu-west-1, or leave it out")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _check_credentials(self) -> S3ArtifactStoreConfig:
        if (self.key is None) != (self.secret is None):
            raise ValueError(
                "key and secret go together: give both, or neither to take the "
                "credentials from the environment (AWS_ACCESS_KEY_ID, ...)"
            )
        if self.token is not None and self.key is None:
            raise ValueError("a token needs key and secret; give all three, or none")
        return self

    @property
    def bucket(self) -> str:
        """The bucket name of :attr:`path`."""
        return self.path.removeprefix("s3://").split("/", 1)[0]


class S3ArtifactStore(FsspecArtifactStore):
    """Artifacts in an S3 bucket (AWS or any S3-compatible endpoint).

    Args:
        path: ``s3://bucket`` or ``s3://bucket/prefix``.
        endpoint_url: An S3-compatible endpoint; ``None`` for AWS.
        region: The bucket's region.
        key: Access key id; ``None`` (with ``secret``) to use the environment.
        secret: Secret access key.
        token: Session token.
        client_kwargs: More keyword arguments for the botocore client.
        cache_dir: Local folder for downloaded artifacts (see
            :func:`~mlzen.artifacts.fsspec.default_cache_dir`).

    Raises:
        ConfigError: A value is invalid; names the option and the reason.

    Example::

        store = S3ArtifactStore("s3://ml/artifacts", endpoint_url="http://127.0.0.1:9000")
        store.check()  # the bucket exists and these credentials may write to it
        Client(Stack(load_settings(), artifact_store=store)).run_pipeline(*training.build())
    """

    #: Steps on other machines (a Ray cluster) reach the same bucket.
    reachable_from_other_machines: ClassVar[bool] = True

    def __init__(
        self,
        path: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        values = {
            "path": path,
            "endpoint_url": endpoint_url,
            "region": region,
            "key": key,
            "secret": secret,
            "token": token,
            "client_kwargs": client_kwargs or {},
        }
        config = S3ArtifactStoreFlavor.validate_config(
            values,
            component="the S3 artifact store",
            fix="Pass a valid value to S3ArtifactStore().",
        )
        self._init(config, cache_dir)

    @classmethod
    def from_config(
        cls,
        config: S3ArtifactStoreConfig,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> S3ArtifactStore:
        """The store for a validated config."""
        store = cls.__new__(cls)
        store._init(config, cache_dir)
        return store

    def _init(
        self, config: S3ArtifactStoreConfig, cache_dir: str | os.PathLike[str] | None
    ) -> None:
        super().__init__(config.path, cache_dir=cache_dir)
        self.config = config

    def __repr__(self) -> str:
        where = f", endpoint_url={self.config.endpoint_url!r}" if self.config.endpoint_url else ""
        return f"S3ArtifactStore({self.root!r}{where})"

    @property
    def bucket(self) -> str:
        return self.config.bucket

    def _connect(self) -> tuple[AbstractFileSystem, str]:
        if self._filesystem is None:
            try:
                import s3fs
            except ImportError as exc:
                raise ArtifactError(
                    f"The S3 artifact store {self.root} needs the s3fs package, which is "
                    f"not installed ({exc}). Install it with: {INSTALL_HINT}",
                    artifact_store=self.root,
                ) from exc
            config = self.config
            client_kwargs = dict(config.client_kwargs)
            if config.region is not None:
                client_kwargs.setdefault("region_name", config.region)
            fs = s3fs.S3FileSystem(
                key=config.key,
                secret=config.secret,
                token=config.token,
                endpoint_url=config.endpoint_url,
                client_kwargs=client_kwargs,
                # Other processes write to the bucket: never answer from a stale listing.
                use_listings_cache=False,
            )
            self._filesystem = (fs, self.root.removeprefix("s3://"))
        return self._filesystem

    # -- checks and errors at the boundary ------------------------------------------------

    def check(self) -> None:
        """Verify, before a run, that the bucket exists and that the credentials may
        read, write and delete under :attr:`root`.

        Raises:
            ArtifactError: Names the bucket, the endpoint and the fix.
        """
        super().check()

    def _probe(self) -> None:
        with self._boundary():
            try:
                self._fs.call_s3("head_bucket", Bucket=self.bucket)  # type: ignore[attr-defined]
            except FileNotFoundError as exc:
                raise self._missing_bucket() from exc
            super()._probe()

    @contextlib.contextmanager
    def _boundary(self) -> Iterator[None]:
        """Turn the S3 failures a user can fix into an ArtifactError saying how."""
        try:
            yield
        except MlzenError:
            raise
        except Exception as exc:
            problem = self._problem(exc)
            if problem is None:
                raise
            raise problem from exc

    def _problem(self, exc: BaseException) -> ArtifactError | None:
        """The ArtifactError for ``exc`` if it is a bucket, credentials or network one."""
        from botocore import exceptions as boto

        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            return self._error(
                f"No AWS credentials were found for the S3 bucket '{self.bucket}' at "
                f"{self._where()} ({exc}). {_CREDENTIALS_FIX}"
            )
        if isinstance(exc, boto.ConnectionError | boto.HTTPClientError | TimeoutError) or (
            type(exc).__module__.startswith("aiohttp") and isinstance(exc, OSError)
        ):
            return self._error(
                f"Cannot reach the S3 endpoint {self._where()} for the bucket "
                f"'{self.bucket}': {exc}. Check endpoint_url and region in the artifact "
                "store's config, and that the server is running and reachable from here."
            )
        if isinstance(exc, PermissionError) or _client_error_code(exc) in _DENIED:
            return self._error(
                f"The S3 endpoint {self._where()} refused access to the bucket "
                f"'{self.bucket}' ({exc}): the credentials are wrong, expired or not "
                f"allowed there. {_CREDENTIALS_FIX} They need to list, read, write and "
                f"delete objects under {self.root}/."
            )
        if isinstance(exc, FileNotFoundError) and _bucket_missing(exc):
            return self._missing_bucket()
        return None

    def _missing_bucket(self) -> ArtifactError:
        endpoint = self.config.endpoint_url
        flag = f" --endpoint-url {endpoint}" if endpoint else ""
        return self._error(
            f"The S3 bucket '{self.bucket}' does not exist at {self._where()}. Create it "
            f"(e.g. aws s3 mb s3://{self.bucket}{flag}) or fix the path of the artifact "
            f"store {self.root}."
        )

    def _error(self, message: str) -> ArtifactError:
        return ArtifactError(
            message,
            artifact_store=self.root,
            bucket=self.bucket,
            endpoint_url=self.config.endpoint_url,
        )

    def _where(self) -> str:
        if self.config.endpoint_url:
            return self.config.endpoint_url
        return f"AWS S3 ({self.config.region})" if self.config.region else "AWS S3"

    def _absent(self, exc: FileNotFoundError) -> bool:
        return not _bucket_missing(exc)

    # Object stores have no folders; s3fs's makedirs would even create a missing bucket.
    def _make_folders(self, folders: set[str]) -> None:
        return None

    def _put_options(self, files: list[FileEntry]) -> dict[str, Any]:
        largest = max((f.size for f in files), default=0)
        return {"chunksize": max(MULTIPART_CHUNKSIZE, math.ceil(largest / MAX_PARTS))}

    # -- every public operation goes through the boundary ---------------------------------

    def publish(self, staging_dir: Path) -> StoredArtifact:
        with self._boundary():
            return super().publish(staging_dir)

    def local_path(self, uri: str, content_hash: str) -> Path:
        with self._boundary():
            return super().local_path(uri, content_hash)

    def exists(self, uri: str) -> bool:
        with self._boundary():
            return super().exists(uri)

    def read_store_file(self, name: str) -> bytes | None:
        with self._boundary():
            return super().read_store_file(name)

    def create_store_file(self, name: str, data: bytes) -> bytes | None:
        with self._boundary():
            return super().create_store_file(name, data)

    def list_store_files(self) -> list[str]:
        with self._boundary():
            return super().list_store_files()

    def has_files(self, uri: str, files: Mapping[str, int]) -> bool:
        with self._boundary():
            return super().has_files(uri, files)

    def delete(self, uri: str) -> None:
        with self._boundary():
            super().delete(uri)

    def list_uris(self) -> list[str]:
        with self._boundary():
            return super().list_uris()

    def stat_folder(self, uri: str) -> FolderStat:
        with self._boundary():
            return super().stat_folder(uri)

    def list_leftovers(self) -> list[Leftover]:
        with self._boundary():
            return super().list_leftovers()

    def delete_leftover(self, path: str) -> None:
        with self._boundary():
            super().delete_leftover(path)


class S3ArtifactStoreFlavor(Flavor):
    """The ``s3`` artifact store flavor (entry point ``artifact_store.s3``)."""

    kind: ClassVar[str] = "artifact_store"
    name: ClassVar[str] = "s3"
    config_class: ClassVar[type[BaseModel]] = S3ArtifactStoreConfig

    def build(self, config: Any) -> S3ArtifactStore:
        if not isinstance(config, S3ArtifactStoreConfig):
            config = self.validate_config(config, component="the S3 artifact store")
        return S3ArtifactStore.from_config(config)


_CREDENTIALS_FIX = (
    "Set key and secret in the artifact store's config (as {{ secrets.NAME.key }} "
    "references, so that they are not stored in plain text), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment."
)
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "403",
}


def _client_error_code(exc: BaseException) -> str | None:
    """The S3 error code of ``exc`` or of the botocore error it was translated from."""
    for error in (exc, exc.__cause__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def _bucket_missing(exc: BaseException) -> bool:
    return _client_error_code(exc) == "NoSuchBucket" or "bucket does not exist" in str(exc)
