"""Save-and-load shortcuts shared by the artifact tests."""

from __future__ import annotations

from typing import Any

from mlzen.artifacts.materializer import SavedArtifact, load_artifact, save_artifact
from mlzen.artifacts.store import ArtifactStore


def load(store: ArtifactStore, saved: SavedArtifact, name: str = "value") -> Any:
    return load_artifact(
        store,
        uri=saved.uri,
        content_hash=saved.content_hash,
        materializer=saved.materializer,
        data_type=saved.data_type,
        name=name,
    )


def roundtrip(store: ArtifactStore, value: Any) -> tuple[SavedArtifact, Any]:
    saved = save_artifact(store, value, name="value")
    return saved, load(store, saved)
