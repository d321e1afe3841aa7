"""``collect_garbage``: delete artifact folders that no artifact version references.

Artifacts are content-addressed folders (``<root>/<hash[:2]>/<hash>/``). A folder is
garbage once no artifact version records it, e.g. after ``mlzen runs delete``, or when a
step failed after saving some of its outputs. Interrupted writes and deletes also leave
folders in the store's ``.staging/`` and ``.trash/``; those older than an hour are
garbage too.

Why this is safe beside running pipelines: a step publishes an output folder (or finds
an identical one already stored and reuses it) *before* the version row that references
it is committed. ``run_step`` therefore holds the artifact store's shared
``publishing()`` lock from before its cache check and its publishes until its rows are
committed, and ``collect_garbage`` holds the exclusive ``collecting()`` lock while it
lists folders, reads the referenced set and deletes. Every folder it sees is then either
referenced by a committed row or truly unreferenced.

A folder counts as referenced when a version records its URI *or* its content hash (its
folder name), so a store reached through another path (a symlink, a moved mount) never
loses referenced folders.

Stores without a lock (``ArtifactStore.locking`` false: the fsspec store for S3, GCS,
...) cannot exclude writers, so there only unreferenced folders older than ``min_age``
(an hour by default) are deleted, and gc must not run while pipelines write to the
store: a publish that reuses an old unreferenced folder does not make it younger.

gc deletes only in an artifact store that belongs to the metadata store it reads the
references from (see ``mlzen.artifacts.identity``): the store's identity file must name
that metadata store as its owner. It refuses, unless ``force``, when they disagree (a
mistyped ``MLZEN_STORE_URL`` opens another, or a new, metadata store), when other
metadata stores record versions in it too (their references are not seen here: a
project logged in to a team server, then logged out), and when the metadata store
references nothing in a store that holds artifacts (the same mistake with a store that
has no identity yet). Otherwise a store without an identity gets one, owned by this
metadata store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlzen.errors import MlzenError, StorePairingError
from mlzen.stack import Stack, active_stack

#: Staging and trash leftovers younger than this (seconds) may belong to a running write.
LEFTOVER_MIN_AGE = 3600.0
#: Default ``min_age`` (seconds) on a store without a lock.
UNLOCKED_MIN_AGE = 3600.0

_clock = time.time  # what "now" is when judging ages; tests move it


class _HasStack(Protocol):
    stack: Stack


@dataclass(frozen=True)
class Garbage:
    """One folder that gc deletes (or, on a dry run, would delete).

    Attributes:
        uri: The artifact folder's URI, or the leftover's path.
        kind: ``"artifact"`` (an unreferenced artifact folder) or ``"leftover"``
            (from ``.staging/`` or ``.trash/``).
        size: Total bytes of its files.
    """

    uri: str
    kind: str
    size: int


@dataclass(frozen=True)
class Kept:
    """A folder gc kept because it is younger than the age window.

    Attributes:
        uri: The artifact folder's URI, or the leftover's path.
        kind: ``"artifact"`` (unreferenced, but new) or ``"leftover"``.
        size: Total bytes of its files.
        age: Seconds since its newest change; ``None`` if the store cannot tell.
        window: The age it must reach before gc deletes it, in seconds.
    """

    uri: str
    kind: str
    size: int
    age: float | None
    window: float


@dataclass
class GcReport:
    """What one garbage collection found and did.

    Attributes:
        artifact_store: The store's root.
        dry_run: Nothing was deleted.
        min_age: Unreferenced folders younger than this many seconds were kept.
        locked: The store's lock kept writers out while gc ran.
        referenced: Artifact folders kept because a version references them.
        recent: Unreferenced artifact folders kept because they are younger than
            ``min_age``.
        garbage: What was deleted (or, on a dry run, would be).
        young: Unreferenced folders and leftovers kept because they are younger than
            their age window.
        errors: One line per folder that could not be deleted.
        forced: Run with ``force``, past the checks that the stores belong together.
    """

    artifact_store: str
    dry_run: bool
    min_age: float
    locked: bool
    referenced: int = 0
    recent: int = 0
    garbage: list[Garbage] = field(default_factory=list)
    young: list[Kept] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    forced: bool = False

    @property
    def count(self) -> int:
        """How many folders were deleted (or would be)."""
        return len(self.garbage)

    @property
    def bytes(self) -> int:
        """How many bytes were freed (or would be)."""
        return sum(item.size for item in self.garbage)

    def to_dict(self) -> dict[str, Any]:
        """The report with the stable keys of ``mlzen gc --json``."""
        return {
            "artifact_store": self.artifact_store,
            "dry_run": self.dry_run,
            "min_age_seconds": self.min_age,
            "locked": self.locked,
            "referenced": self.referenced,
            "recent": self.recent,
            "count": self.count,
            "bytes": self.bytes,
            "garbage": [{"uri": g.uri, "kind": g.kind, "size": g.size} for g in self.garbage],
            "young": [
                {"uri": k.uri, "kind": k.kind, "size": k.size, "age": k.age, "window": k.window}
                for k in self.young
            ],
            "errors": list(self.errors),
            "forced": self.forced,
        }


def collect_garbage(
    client_or_stack: _HasStack | Stack | None = None,
    dry_run: bool = False,
    *,
    min_age: float | None = None,
    on_wait: Callable[[], None] | None = None,
    force: bool = False,
) -> GcReport:
    """Delete the artifact folders no artifact version references, and old leftovers.

    Args:
        client_or_stack: A ``Client`` or a ``Stack``; the active stack by default.
        dry_run: Only report what would be deleted.
        min_age: Keep unreferenced folders younger than this many seconds. Defaults to
            0 on a store with a lock (the lock makes gc safe beside writers) and to
            ``UNLOCKED_MIN_AGE`` on one without.
        on_wait: Called once if gc has to wait for steps that are saving outputs.
        force: Collect even where the artifact store belongs to another metadata store,
            or where this one references nothing in it (see the module docstring).

    Raises:
        StorePairingError: The stores do not look like they belong together; the
            message says what looks wrong and how to fix it.

    Example:
        >>> report = collect_garbage(Client(), dry_run=True)
        >>> report.count, report.bytes
    """
    if client_or_stack is None:
        stack = active_stack()
    elif isinstance(client_or_stack, Stack):
        stack = client_or_stack
    else:
        stack = client_or_stack.stack
    artifacts = stack.artifact_store
    if min_age is None:
        min_age = 0.0 if artifacts.locking else UNLOCKED_MIN_AGE
    report = GcReport(artifacts.root, dry_run, min_age, artifacts.locking, forced=force)
    owner = _check_owner(stack, force)
    with artifacts.collecting(on_wait=on_wait):
        garbage = _find_garbage(stack, report)
        _check_references(stack, report, garbage, force)
        if owner is None and not force and not dry_run and report.referenced:
            # First collection of a store without an identity: it belongs here from now on.
            stack.claim_artifact_store()
        if dry_run:
            report.garbage = garbage
            return report
        for item in garbage:
            try:
                if item.kind == "artifact":
                    artifacts.delete(item.uri)
                else:
                    artifacts.delete_leftover(item.uri)
            except (OSError, MlzenError) as exc:
                report.errors.append(f"{item.uri}: {type(exc).__name__}: {exc}")
            else:
                report.garbage.append(item)
    return report


def _check_owner(stack: Stack, force: bool) -> str | None:
    """The owner the artifact store's identity names (``None``: it has no identity);
    raises if that is not this stack's metadata store, unless ``force``."""
    from mlzen.artifacts.identity import store_identity, store_users
    from mlzen.stack import shown_url
    from mlzen.store import identity as pairing

    identity = store_identity(stack.artifact_store)
    if identity is None or force:
        return None if identity is None else identity.owner
    metadata_id = pairing.metadata_store_id(stack.metadata_store)
    if identity.owner != metadata_id:
        raise StorePairingError(
            f"Not collecting garbage: the artifact store {stack.artifact_store.root} belongs "
            f"to the metadata store at {identity.owner_url} (id {identity.owner}), but this "
            f"stack reads references from {shown_url(stack.metadata_store)} (id "
            f"{metadata_id}), which does not know that store's versions: gc would delete "
            "artifacts it still needs. Check MLZEN_STORE_URL and the stack (mlzen status), "
            "and run gc with the metadata store that owns the artifact store; if this one "
            "has really taken over the artifact store and no other records versions in "
            "it, run 'mlzen gc --force'.",
            artifact_store=stack.artifact_store.root,
            owner=identity.owner,
            metadata_store_id=metadata_id,
        )
    users = store_users(stack.artifact_store)
    if users:
        listed = ", ".join(f"{url} (id {user})" for user, url in sorted(users.items()))
        raise StorePairingError(
            f"Not collecting garbage: besides this stack's metadata store, which owns the "
            f"artifact store {stack.artifact_store.root}, the metadata store(s) at {listed} "
            "record versions in it, and gc sees only this one's references, so it would "
            "delete artifacts they still need. Collect only when they no longer record "
            "there: then delete their .mlzen-store.<id>.json file(s) at the store's root, "
            "or run 'mlzen gc --force'.",
            artifact_store=stack.artifact_store.root,
            users=", ".join(sorted(users)),
        )
    return identity.owner


def _check_references(stack: Stack, report: GcReport, garbage: list[Garbage], force: bool) -> None:
    """Raise if the metadata store references nothing in an artifact store that holds
    artifacts (and would lose them all), unless ``force``."""
    doomed = [g for g in garbage if g.kind == "artifact"]
    if force or report.referenced or not doomed:
        return
    from mlzen.stack import shown_url

    raise StorePairingError(
        f"Not collecting garbage: the metadata store at {shown_url(stack.metadata_store)} "
        f"references none of the {len(doomed) + report.recent} artifact folder(s) in "
        f"{stack.artifact_store.root}, so gc would delete them all. That is what a "
        "mistyped MLZEN_STORE_URL (a new, empty store) or the wrong stack looks like: "
        "check them with 'mlzen status'. If every run was deleted on purpose, run "
        "'mlzen gc --force'.",
        artifact_store=stack.artifact_store.root,
        unreferenced=len(doomed),
    )


def _find_garbage(stack: Stack, report: GcReport) -> list[Garbage]:
    """What to delete; counts what is kept in ``report``. Call it holding the lock."""
    from mlzen.store import queries

    artifacts = stack.artifact_store
    # Listed before the references are read: on a store without a lock, a folder
    # published meanwhile is then not looked at, rather than looked at unreferenced.
    stored = artifacts.list_uris()
    rows = queries.referenced_artifact_folders(stack.metadata_store)
    uris = {row["uri"].rstrip("/") for row in rows}
    hashes = {row["content_hash"] for row in rows}
    now = _clock()
    garbage: list[Garbage] = []
    for uri in stored:
        folder = uri.rstrip("/")
        if folder in uris or folder.rsplit("/", 1)[-1] in hashes:
            report.referenced += 1
            continue
        try:
            stat = artifacts.stat_folder(uri)
        except MlzenError:  # gone meanwhile
            continue
        age = None if stat.modified is None else now - stat.modified
        if report.min_age > 0 and (age is None or age < report.min_age):
            report.recent += 1
            report.young.append(Kept(uri, "artifact", stat.size, age, report.min_age))
            continue
        garbage.append(Garbage(uri, "artifact", stat.size))
    for leftover in artifacts.list_leftovers():
        age = None if leftover.modified is None else now - leftover.modified
        if age is not None and age >= LEFTOVER_MIN_AGE:
            garbage.append(Garbage(leftover.path, "leftover", leftover.size))
        else:
            report.young.append(
                Kept(leftover.path, "leftover", leftover.size, age, LEFTOVER_MIN_AGE)
            )
    return garbage
