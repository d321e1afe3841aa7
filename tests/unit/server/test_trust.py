"""The server never loads a value whose format runs code when loaded (pickle, ...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.server.conftest import LiveServer
from tests.unit.server.pipelines_for_server import UNPICKLED_MARKER, booby_pipeline

# Saving a Booby falls back to cloudpickle on purpose, which warns.
pytestmark = pytest.mark.filterwarnings("ignore:.*pickled with cloudpickle:UserWarning")


def test_pickled_values_are_neither_previewed_nor_compared_by_loading(
    live: LiveServer, tmp_path: Path
) -> None:
    first = booby_pipeline(folder=str(tmp_path), value=1)
    second = booby_pipeline(folder=str(tmp_path), value=2)
    marker = tmp_path / UNPICKLED_MARKER
    assert not marker.exists()
    version = live.get("/api/v1/artifact-versions", params={"name": "booby"}).json()["items"][0]
    assert version["materializer"].endswith("PickleMaterializer")
    preview = live.get(f"/api/v1/artifact-versions/{version['id']}/preview").json()
    assert preview["kind"] == "none"
    assert "can run code" in preview["text"]
    diff = live.get("/api/v1/compare", params={"old": first.name, "new": second.name}).json()
    booby = next(a for a in diff["artifacts"] if a["output"] == "booby")
    assert booby["kind"] == "opaque"
    assert booby["identical"] is False
    assert not marker.exists(), "the server unpickled a stored value"
    # The files are still there to download and load in one's own session.
    files = live.get(f"/api/v1/artifact-versions/{version['id']}/files").json()
    assert [f["path"] for f in files] == ["data.pkl"]
    # ...where loading it does run the stored code (so the marker above means something).
    from mlzen import Client

    assert Client().get_artifact_version("booby").load().value == 2
    assert marker.read_text() == "2\n"
