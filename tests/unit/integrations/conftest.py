"""Fixtures for the integration materializer tests: a fresh store and registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlzen.artifacts import materializer
from mlzen.artifacts.local import LocalArtifactStore


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[materializer._Registry]:
    """A registry of this test's own, which reads the installed entry points afresh."""
    fresh = materializer._Registry()
    monkeypatch.setattr(materializer, "_registry", fresh)
    yield fresh


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")
