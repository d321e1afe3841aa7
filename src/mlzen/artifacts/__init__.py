"""Artifacts: every value passed between steps, stored by content hash.

``store`` defines where the files of an artifact live (:class:`LocalArtifactStore` on a
local filesystem, :class:`FsspecArtifactStore` on S3 and friends); ``materializer``
decides how a value becomes files and back; ``builtin`` holds the formats for builtins,
numpy, pandas and pyarrow. Importing this package loads none of those libraries.
"""

from __future__ import annotations

from mlzen.artifacts.materializer import Materializer as Materializer
from mlzen.artifacts.materializer import SavedArtifact as SavedArtifact
from mlzen.artifacts.materializer import load_artifact as load_artifact
from mlzen.artifacts.materializer import materializer_by_name as materializer_by_name
from mlzen.artifacts.materializer import materializer_for as materializer_for
from mlzen.artifacts.materializer import materializer_name as materializer_name
from mlzen.artifacts.materializer import register_materializer as register_materializer
from mlzen.artifacts.materializer import save_artifact as save_artifact
from mlzen.artifacts.materializer import type_path as type_path
from mlzen.artifacts.store import ArtifactStore as ArtifactStore
from mlzen.artifacts.store import StoredArtifact as StoredArtifact
from mlzen.artifacts.store import artifact_store_for as artifact_store_for

__all__ = [
    "ArtifactStore",
    "Materializer",
    "SavedArtifact",
    "StoredArtifact",
    "artifact_store_for",
    "load_artifact",
    "materializer_by_name",
    "materializer_for",
    "materializer_name",
    "register_materializer",
    "save_artifact",
    "type_path",
]
