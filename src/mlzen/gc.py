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

An artifact store shared by several metadata stores (projects) is out of scope: gc sees
only the references of its own metadata store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlzen.errors import MlzenError
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
        errors: One line per folder that could not be deleted.
    """

    artifact_store: str
    dry_run: bool
    min_age: float
    locked: bool
    referenced: int = 0
    recent: int = 0
    garbage: list[Garbage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

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
            "errors": list(self.errors),
        }


def collect_garbage(
    client_or_stack: _HasStack | Stack | None = None,
    dry_run: bool = False,
    *,
    min_age: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> GcReport:
    """Delete the artifact folders no artifact version references, and old leftovers.

    Args:
        client_or_stack: A ``Client`` or a ``Stack``; the active stack by default.
        dry_run: Only report what would be deleted.
        min_age: Keep unreferenced folders younger than this many seconds. Defaults to
            0 on a store with a lock (the lock makes gc safe beside writers) and to
            ``UNLOCKED_MIN_AGE`` on one without.
        on_wait: Called once if gc has to wait for steps that are saving outputs.

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
    report = GcReport(artifacts.root, dry_run, min_age, artifacts.locking)
    with artifacts.collecting(on_wait=on_wait):
        garbage = _find_garbage(stack, report)
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
        if report.min_age > 0 and (stat.modified is None or now - stat.modified < report.min_age):
            report.recent += 1
            continue
        garbage.append(Garbage(uri, "artifact", stat.size))
    for leftover in artifacts.list_leftovers():
        if leftover.modified is not None and now - leftover.modified >= LEFTOVER_MIN_AGE:
            garbage.append(Garbage(leftover.path, "leftover", leftover.size))
    return garbage
