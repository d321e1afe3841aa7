"""Visualizations: files that show an artifact version to a person (HTML, PNG, SVG, ...).

A materializer declares them with :meth:`Materializer.save_visualizations`, which
writes files into a folder and returns one :class:`Visualization` per file. After the
artifact itself is saved, :func:`save_visualizations` publishes that folder into the
artifact store the way artifacts are published (content-addressed, atomic: a complete
folder or none), so a visualization lives beside its artifact as
``<root>/<hash[:2]>/<hash>/<file>``. Its URI is that folder's URI plus the file name;
the folder name is the content hash, which every read verifies
(:func:`visualization_path`). Garbage collection keeps the folder while a recorded
visualization points into it.

A visualization is a courtesy: when one cannot be made, the step still succeeds
(``run_step`` logs a warning line instead).
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.artifacts.identity import version_folder
from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ArtifactError

if TYPE_CHECKING:
    from mlzen.artifacts.materializer import Materializer

#: The kinds a visualization may have, as recorded in ``artifact_visualizations.kind``.
KINDS = ("html", "png", "svg", "csv", "markdown")
MEDIA_TYPES = {
    "html": "text/html",
    "png": "image/png",
    "svg": "image/svg+xml",
    "csv": "text/csv",
    "markdown": "text/markdown",
}
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Visualization:
    """One file a materializer wrote into its visualization folder.

    Attributes:
        name: Unique per artifact version, e.g. ``"preview"`` or ``"histograms"``.
        kind: One of :data:`KINDS`.
        file: The file's name inside the folder (no sub-folders).
    """

    name: str
    kind: str
    file: str


@dataclass(frozen=True)
class StoredVisualization:
    """A published visualization, ready to record: ``uri`` is folder URI + ``/`` + file."""

    name: str
    kind: str
    uri: str


def save_visualizations(
    store: ArtifactStore, value: Any, *, name: str, materializer: type[Materializer]
) -> list[StoredVisualization]:
    """Let ``materializer`` write the visualizations of ``value`` and publish them.

    Call it inside the store's ``publishing()`` lock, before the rows are recorded.

    Returns:
        Nothing when the materializer declares no visualization.

    Raises:
        ArtifactError: The materializer failed or returned something invalid; the
            caller decides that this must not fail the step.
    """
    from mlzen.artifacts.materializer import Materializer

    if materializer.save_visualizations is Materializer.save_visualizations:
        return []  # the default declares none: no folder to stage
    label = f"{materializer.__module__}:{materializer.__qualname__}"
    with store.staging() as folder:
        try:
            declared = list(materializer().save_visualizations(value, folder) or [])
        except Exception as exc:
            raise ArtifactError(
                f"Materializer {label} could not make the visualizations of artifact "
                f"'{name}': {type(exc).__name__}: {exc}. The artifact itself was saved; fix "
                "the materializer's save_visualizations() to get them.",
                artifact_name=name,
                materializer=label,
            ) from exc
        if not declared:
            return []
        _check(declared, folder, name, label)
        wanted = {v.file for v in declared}
        for extra in [p for p in folder.iterdir() if p.name not in wanted]:
            # Only what is recorded is published.
            if extra.is_dir() and not extra.is_symlink():
                shutil.rmtree(extra)
            else:
                extra.unlink()
        stored = store.publish(folder)
    return [StoredVisualization(v.name, v.kind, f"{stored.uri}/{v.file}") for v in declared]


def _check(declared: list[Visualization], folder: Path, name: str, label: str) -> None:
    names: set[str] = set()
    for item in declared:
        problem = None
        if not isinstance(item, Visualization):
            problem = f"returned {item!r}, not a Visualization"
        elif item.kind not in KINDS:
            problem = f"gave '{item.name}' the kind '{item.kind}' (kinds: {', '.join(KINDS)})"
        elif item.name in names or not item.name or len(item.name) > 255:
            problem = f"gave two visualizations the name '{item.name}', or an empty/long one"
        elif not _FILE_NAME.fullmatch(item.file) or not (folder / item.file).is_file():
            problem = f"declared '{item.file}', which is not a file it wrote into the folder"
        if problem:
            raise ArtifactError(
                f"Materializer {label} {problem} for artifact '{name}'. Return one "
                "Visualization(name, kind, file) per file written by save_visualizations().",
                artifact_name=name,
                materializer=label,
            )
        names.add(item.name)


def visualization_path(
    store: ArtifactStore,
    uri: str,
    *,
    artifact_store_id: str | None = None,
    artifact: str = "artifact",
) -> Path:
    """A local copy of the visualization file at ``uri``, its folder's hash verified.

    The folder is derived from ``store`` and the content hash the URI names, once the
    version is known to be stored in ``store`` (see :func:`version_folder`).

    Args:
        store: The artifact store to read.
        uri: The visualization's recorded URI (folder URI + ``/`` + file name).
        artifact_store_id: The id of the store its artifact version was recorded in;
            ``None`` (a version saved before stores had ids): ``uri`` must be in ``store``.
        artifact: ``name:version`` of that version, for messages.

    Raises:
        NotFoundError: The folder is not (or no longer) in the store.
        ArtifactCorruptedError: The folder's files no longer match its hash.
        ArtifactError: ``uri`` is not a visualization URI, or not in ``store``.
    """
    folder, _, file = uri.rstrip("/").rpartition("/")
    content_hash = folder.rpartition("/")[2]
    if not re.fullmatch(r"[0-9a-f]{64}", content_hash) or not _FILE_NAME.fullmatch(file):
        raise ArtifactError(
            f"A visualization of {artifact} is recorded at something that is not the URI "
            "of a visualization (<store>/<hash[:2]>/<hash>/<file>). Take visualizations "
            "from ArtifactVersion.visualizations.",
            artifact_name=artifact,
        )
    located = version_folder(
        store,
        artifact_store_id=artifact_store_id,
        uri=folder,
        content_hash=content_hash,
        name=artifact,
    )
    return store.local_path(located, content_hash) / file


class ArtifactVisualization:
    """A recorded visualization of an artifact version (``ArtifactVersion.visualizations``).

    In a notebook it displays itself: HTML and SVG inline, PNG as an image.

    Attributes:
        name: Its name, unique per artifact version.
        kind: ``html``, ``png``, ``svg``, ``csv`` or ``markdown``.
        uri: Where the file is stored.
        media_type: The MIME type of ``kind``.
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        name: str,
        kind: str,
        uri: str,
        artifact_store_id: str | None = None,
        artifact: str = "artifact",
    ) -> None:
        self._store = store
        self._artifact_store_id = artifact_store_id
        self._artifact = artifact
        self.name = name
        self.kind = kind
        self.uri = uri
        self.media_type = MEDIA_TYPES.get(kind, "application/octet-stream")

    @property
    def path(self) -> Path:
        """A local file holding it (downloaded first from a remote store), hash-verified."""
        return visualization_path(
            self._store,
            self.uri,
            artifact_store_id=self._artifact_store_id,
            artifact=self._artifact,
        )

    def read_bytes(self) -> bytes:
        """The file's content."""
        return self.path.read_bytes()

    def _repr_html_(self) -> str:
        if self.kind == "html":
            return self.read_bytes().decode("utf-8", errors="replace")
        if self.kind in ("png", "svg"):
            data = base64.b64encode(self.read_bytes()).decode("ascii")
            return (
                f'<img alt="{html.escape(self.name)}" src="data:{self.media_type};base64,{data}">'
            )
        return f"<pre>{html.escape(self.read_bytes().decode('utf-8', errors='replace'))}</pre>"

    def _repr_png_(self) -> bytes | None:
        return self.read_bytes() if self.kind == "png" else None

    def __repr__(self) -> str:
        return f"<ArtifactVisualization {self.name} ({self.kind}) {self.uri}>"
