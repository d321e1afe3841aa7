"""Which artifact store this is, and where a recorded version's files are in it.

An artifact store gets an identity on first use: a random id written to the file
``.mlzen-store.json`` at its root, with the id of the metadata store that owns it (the
one whose runs first wrote there) and that store's URL, for messages. Any other
metadata store that records versions in it leaves a file ``.mlzen-store.<its id>.json``
beside it, so the owner knows it does not hold every reference. Every artifact version
records the id of the store its files went to, so a version is only ever read from the
store that holds it:

- a reader derives a version's folder from the store it reads and the version's content
  hash (:func:`version_folder`); the URI the version recorded is never opened. A version
  recorded in another store is refused (:class:`ForeignArtifactError`), with a message
  that names only the artifact and the store ids, never a path;
- versions recorded before stores had ids (no store id) are read only when their URI is
  this store's folder for their hash (``ArtifactStore.contains``);
- garbage collection deletes only in a store whose owner is the metadata store it reads
  references from, and that no other metadata store uses (see :mod:`mlzen.gc`).

The marker is created atomically where the store allows it (a local folder: a hard link
that fails if the file exists). On object stores it is written and read back, so two
first writers racing within the same instant could each keep their own id for the
versions of that instant; the later marker wins from then on.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ArtifactError

IDENTITY_FILE = ".mlzen-store.json"
MARKER_FORMAT = 1
STORE_ID = re.compile(r"[0-9a-f]{32}")
CONTENT_HASH = re.compile(r"[0-9a-f]{64}")
# Where the identity read from a store object is kept (it travels to worker processes).
_CACHE = "_mlzen_identity"


@dataclass(frozen=True)
class StoreIdentity:
    """The identity of an artifact store, as its marker file records it.

    Attributes:
        id: 32 hex digits, random, made on the store's first use.
        owner: The id of the metadata store that owns the store (its garbage collector).
        owner_url: That metadata store's URL without credentials, for messages.
        created_at: When the marker was written (ISO 8601, UTC).
    """

    id: str
    owner: str
    owner_url: str
    created_at: str

    def to_bytes(self) -> bytes:
        return json.dumps({"format": MARKER_FORMAT, **asdict(self)}, sort_keys=True).encode()


class ForeignArtifactError(ArtifactError):
    """A recorded artifact version whose files are not in the artifact store being read."""


def parse_marker(raw: bytes, root: str) -> StoreIdentity:
    """The identity in a marker file's bytes.

    Raises:
        ArtifactError: The marker is not one mlzen wrote (damaged, or edited by hand).
    """
    try:
        data = json.loads(raw)
        identity = StoreIdentity(
            id=data["id"],
            owner=data["owner"],
            owner_url=data["owner_url"],
            created_at=data["created_at"],
        )
    except (ValueError, KeyError, TypeError):
        identity = None
    if (
        identity is None
        or not isinstance(identity.id, str)
        or not STORE_ID.fullmatch(identity.id)
        or not isinstance(identity.owner, str)
        or not STORE_ID.fullmatch(identity.owner)
        or not isinstance(identity.owner_url, str)
        or not isinstance(identity.created_at, str)
    ):
        raise ArtifactError(
            f"The identity file {IDENTITY_FILE} of the artifact store {root} is damaged, so "
            "it is not known which metadata store owns the store. Restore the file from a "
            "backup; only if this store holds nothing you need, delete it (the next run "
            "gives the store a new identity).",
            artifact_store=root,
        )
    return identity


def store_identity(store: ArtifactStore) -> StoreIdentity | None:
    """The identity of ``store``, ``None`` if it has none yet (or cannot have one).

    Read from the store once per store object; the object carries it to the worker
    processes it is sent to.
    """
    known = store.__dict__.get(_CACHE)
    if known is not None:
        return known  # type: ignore[no-any-return]
    raw = store.read_store_file(IDENTITY_FILE)
    if raw is None:
        return None
    identity = parse_marker(raw, store.root)
    store.__dict__[_CACHE] = identity
    return identity


def claim_store(store: ArtifactStore, *, owner: str, owner_url: str) -> tuple[StoreIdentity, bool]:
    """The identity of ``store``, made now (owned by metadata store ``owner``) if absent.

    Returns:
        The identity and whether this call made it.

    Raises:
        ArtifactError: The store cannot keep an identity, or its marker is damaged.
    """
    existing = store_identity(store)
    if existing is not None:
        return existing, False
    made = StoreIdentity(
        id=uuid.uuid4().hex,
        owner=owner,
        owner_url=owner_url,
        created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )
    stored = store.create_store_file(IDENTITY_FILE, made.to_bytes())
    if stored is None:
        raise ArtifactError(
            f"The artifact store {store.root} cannot keep an identity file, so its versions "
            "cannot be told apart from another store's. Implement read_store_file(), "
            "create_store_file() and list_store_files() in its class.",
            artifact_store=store.root,
        )
    identity = parse_marker(stored, store.root)
    store.__dict__[_CACHE] = identity
    return identity, identity == made


def record_user(store: ArtifactStore, metadata_store_id: str, url: str) -> None:
    """Leave word in ``store`` that metadata store ``metadata_store_id`` (not its owner)
    records versions in it."""
    if not STORE_ID.fullmatch(metadata_store_id):
        raise ArtifactError(
            f"{metadata_store_id!r} is not a metadata store id (32 hex digits).",
            artifact_store=store.root,
        )
    note = {
        "format": MARKER_FORMAT,
        "metadata_store": metadata_store_id,
        "url": url,
        "since": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    store.create_store_file(
        f".mlzen-store.{metadata_store_id}.json", json.dumps(note, sort_keys=True).encode()
    )


def store_users(store: ArtifactStore) -> dict[str, str]:
    """The metadata stores besides its owner that record versions in ``store``: id → URL."""
    users: dict[str, str] = {}
    for name in store.list_store_files():
        if name == IDENTITY_FILE:
            continue
        metadata_store_id = name.removeprefix(".mlzen-store.").removesuffix(".json")
        url = "an unknown URL"
        raw = store.read_store_file(name)
        try:
            url = str(json.loads(raw or b"")["url"])
        except (ValueError, KeyError, TypeError):
            pass
        users[metadata_store_id] = url
    return users


def foreign_error(name: str, version: int | None, recorded: str | None) -> ForeignArtifactError:
    """The error for a version whose files are not in the store being read.

    It says nothing about any path: the recorded location may be anywhere, and whether
    it exists is not for the reader to learn.
    """
    label = f"{name}:{version}" if version is not None else f"'{name}'"
    where = (
        f"in another artifact store (id {recorded})"
        if recorded
        else "at a location outside this stack's artifact store"
    )
    return ForeignArtifactError(
        f"Artifact {label} is recorded {where}, so it is not read from this stack's "
        "artifact store. Read it with the stack (project) whose artifact store holds it, "
        "or rerun the step that produced it with caching off to store it here.",
        artifact_name=name,
        version=version,
        artifact_store_id=recorded,
    )


def version_folder(
    store: ArtifactStore,
    *,
    artifact_store_id: str | None,
    uri: str,
    content_hash: str,
    name: str,
    version: int | None = None,
) -> str:
    """The URI of a recorded version's folder in ``store``, derived from its content hash.

    A version recorded with a store id is read only from the store with that id; one
    recorded before stores had ids only when ``uri`` is ``store``'s folder for its hash.

    Raises:
        ForeignArtifactError: The version's files are not in ``store``.
    """
    if not isinstance(content_hash, str) or not CONTENT_HASH.fullmatch(content_hash):
        raise foreign_error(name, version, None)
    if artifact_store_id is not None:
        own = store_identity(store)
        if own is None or own.id != artifact_store_id:
            raise foreign_error(name, version, artifact_store_id)
    elif not store.contains(uri):
        raise foreign_error(name, version, None)
    return store.folder_uri(content_hash)
