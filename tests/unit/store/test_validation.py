"""Every field of a recorded artifact version is checked before the store writes it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlzen.errors import ConfigError, InvalidNameError
from mlzen.store import validation
from mlzen.store.metadata import OutputRecord
from mlzen.store.validation import check_output

HASH = "ab" * 32
VIEW_HASH = "cd" * 32
GOOD = OutputRecord(
    name="model",
    uri=f"s3://bucket/artifacts/{HASH[:2]}/{HASH}",
    content_hash=HASH,
    materializer="mlzen.integrations.sklearn:SklearnMaterializer",
    data_type="tests.test_x.fit.<locals>.Model",
    size=123,
    metadata={"rows": 3},
    visualizations=[("preview", "html", f"/a/{VIEW_HASH[:2]}/{VIEW_HASH}/preview.html")],
    artifact_store_id="e" * 32,
    files={"data.json": 100, "sub/meta.json": 23},
)


def test_what_mlzen_writes_passes() -> None:
    check_output(GOOD)
    check_output(dataclasses.replace(GOOD, artifact_store_id=None, visualizations=(), files=None))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uri": "/etc"}, "uri"),
        ({"uri": f"/a/../{HASH[:2]}/{HASH}"}, "uri"),
        ({"uri": f"/a\x00b/{HASH[:2]}/{HASH}"}, "uri"),
        ({"uri": f"/a/{HASH[:2]}/{'ef' * 32}"}, "uri"),
        ({"uri": "x" * 5000}, "uri"),
        ({"content_hash": "../../etc"}, "content_hash"),
        ({"content_hash": HASH.upper()}, "content_hash"),
        ({"artifact_store_id": "zz"}, "artifact_store_id"),
        ({"materializer": "os.system"}, "materializer"),
        ({"materializer": "a:b; rm"}, "materializer"),
        ({"data_type": "a b"}, "data_type"),
        ({"size": -1}, "size"),
        ({"size": 2**63}, "size"),
        ({"size": True}, "size"),
        ({"metadata": {"x": object()}}, "metadata"),
        ({"files": {"../outside": 123}}, "files"),
        ({"files": {"/etc/passwd": 123}}, "files"),
        ({"files": {"a//b": 123}}, "files"),
        ({"files": {"a\x00b": 123}}, "files"),
        ({"files": {"data.json": -1, "x": 124}}, "files"),
        ({"files": {"data.json": "100"}}, "files"),
        ({"files": {"data.json": 99}}, "files"),
        ({"files": ["data.json"]}, "files"),
        ({"visualizations": [("preview", "HTML!", "/a/cd/x.html")]}, "visualization 'preview'"),
        ({"visualizations": [("p", "html", f"/a/{VIEW_HASH[:2]}/{VIEW_HASH}/../x")]}, "visual"),
        ({"visualizations": [("p", "html", "/etc/passwd")]}, "visualization 'p'"),
        (
            {
                "visualizations": [
                    ("p", "html", f"/a/{VIEW_HASH[:2]}/{VIEW_HASH}/a.html"),
                    ("p", "png", f"/a/{VIEW_HASH[:2]}/{VIEW_HASH}/b.png"),
                ]
            },
            "visualizations",
        ),
    ],
)
def test_a_bad_field_is_refused_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_output(dataclasses.replace(GOOD, **change))
    assert field in refused.value.message
    assert "Artifact 'model'" in refused.value.message


@pytest.mark.parametrize("name", ["a/b", "..", "x..y", "tab\there", "", "é" * 256, "back\\slash"])
def test_a_bad_artifact_or_visualization_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_output(dataclasses.replace(GOOD, name=name))
    with pytest.raises(InvalidNameError):
        check_output(
            dataclasses.replace(
                GOOD, visualizations=[(name, "html", f"/a/{VIEW_HASH[:2]}/{VIEW_HASH}/p.html")]
            )
        )


def test_metadata_has_a_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "MAX_METADATA_BYTES", 100)
    check_output(dataclasses.replace(GOOD, metadata={"x": "y" * 50}))
    with pytest.raises(ConfigError, match="larger than 100 bytes"):
        check_output(dataclasses.replace(GOOD, metadata={"x": "y" * 200}))
