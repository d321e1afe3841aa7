from __future__ import annotations

import importlib.metadata
import json
from collections import OrderedDict
from enum import IntEnum
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mlzen.artifacts import builtin, materializer
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.materializer import (
    BUILTIN_MATERIALIZERS,
    ENTRY_POINT_GROUP,
    Materializer,
    materializer_by_name,
    materializer_for,
    materializer_name,
    register_materializer,
    save_artifact,
    type_path,
)
from mlzen.errors import MaterializerError

from .helpers import load, roundtrip


class Gadget:
    def __init__(self, size: int) -> None:
        self.size = size


class GadgetMaterializer(Materializer):
    """Stands in for a plugin package's materializer, found through an entry point."""

    def save(self, value: Gadget, folder: Path) -> None:
        (folder / "gadget.json").write_text(json.dumps({"size": value.size}))

    def load(self, folder: Path, data_type: str) -> Gadget:
        return Gadget(json.loads((folder / "gadget.json").read_text())["size"])


class TaggedDict(dict):
    pass


class Colour(IntEnum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: int


class Modern(Materializer):
    handled_types = ("builtins.int",)

    def save(self, value: Any, folder: Path) -> None:
        (folder / "n.txt").write_text(str(value))

    def load(self, folder: Path, data_type: str) -> Any:
        return int((folder / "n.txt").read_text())


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, mapping: dict[str, str]) -> list[str]:
    """Make ``importlib.metadata.entry_points`` report ``mapping``; returns the call log."""
    calls: list[str] = []

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        calls.append(group)
        return [
            importlib.metadata.EntryPoint(name=name, value=value, group=group)
            for name, value in mapping.items()
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return calls


def test_type_path_and_materializer_name() -> None:
    assert type_path(int) == "builtins.int"
    assert type_path(type(None)) == "builtins.NoneType"
    assert type_path(Gadget) == f"{__name__}.Gadget"
    assert materializer_name(GadgetMaterializer) == f"{__name__}:GadgetMaterializer"


def test_builtin_table_agrees_with_handled_types() -> None:
    for key, name in BUILTIN_MATERIALIZERS.items():
        assert key in materializer_by_name(name).handled_types


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, builtin.JSONMaterializer),
        (True, builtin.JSONMaterializer),
        (None, builtin.JSONMaterializer),
        ({"a": [1, 2.5, "x"]}, builtin.JSONMaterializer),
        ((1, "two"), builtin.JSONMaterializer),
        (b"raw", builtin.BytesMaterializer),
        (bytearray(b"raw"), builtin.BytesMaterializer),
    ],
)
def test_builtin_types_get_their_materializer(value: Any, expected: type) -> None:
    assert materializer_for(value) is expected


@pytest.mark.parametrize(
    "value",
    [
        OrderedDict(a=1),
        TaggedDict(a=1),
        Colour.RED,
        Point(1, 2),
        {1: "int key"},
        {"nested": (1, 2)},
        {"s": {1, 2}},
    ],
    ids=["OrderedDict", "dict-subclass", "IntEnum", "namedtuple", "int-key", "nested-tuple", "set"],
)
def test_values_json_would_change_fall_back_to_pickle(
    store: LocalArtifactStore, value: Any
) -> None:
    with pytest.warns(UserWarning, match="cloudpickle"):
        saved, loaded = roundtrip(store, value)

    assert saved.materializer == materializer_name(builtin.PickleMaterializer)
    assert type(loaded) is type(value)
    assert loaded == value


def test_self_referencing_list_falls_back_to_pickle(store: LocalArtifactStore) -> None:
    looped: list[Any] = [1]
    looped.append(looped)

    with pytest.warns(UserWarning, match="JSONMaterializer cannot store this builtins.list"):
        _, loaded = roundtrip(store, looped)

    assert loaded[1] is loaded


def test_pickle_fallback_warns_once_per_type(store: LocalArtifactStore) -> None:
    class First:
        pass

    class Second:
        pass

    with pytest.warns(UserWarning) as record:
        roundtrip(store, First())
        roundtrip(store, First())
        roundtrip(store, Second())

    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert type_path(First) in messages[0] and type_path(Second) in messages[1]
    assert "@register_materializer(" in messages[0]


def test_registered_materializer_for_a_subclass_wins(store: LocalArtifactStore) -> None:
    @register_materializer(TaggedDict)
    class TaggedDictMaterializer(Materializer):
        def save(self, value: Any, folder: Path) -> None:
            (folder / "tagged.json").write_text(json.dumps(value))

        def load(self, folder: Path, data_type: str) -> Any:
            return TaggedDict(json.loads((folder / "tagged.json").read_text()))

    assert materializer_for(TaggedDict(a=1)) is TaggedDictMaterializer
    assert materializer_for({"a": 1}) is builtin.JSONMaterializer
    _, loaded = roundtrip(store, TaggedDict(a=1))
    assert type(loaded) is TaggedDict and loaded == {"a": 1}


def test_user_registration_beats_a_builtin_for_the_same_type(store: LocalArtifactStore) -> None:
    register_materializer()(Modern)  # types from handled_types

    assert materializer_for(7) is Modern
    assert materializer_for(True) is builtin.JSONMaterializer  # bool has its own entry
    saved, loaded = roundtrip(store, 7)
    assert saved.materializer == materializer_name(Modern)
    assert loaded == 7


def test_registration_by_dotted_path_needs_no_import() -> None:
    register_materializer(f"{__name__}.Gadget")(GadgetMaterializer)

    assert materializer_for(Gadget(1)) is GadgetMaterializer


def test_entry_point_materializers_resolve_lazily_and_once(
    monkeypatch: pytest.MonkeyPatch, store: LocalArtifactStore
) -> None:
    calls = fake_entry_points(
        monkeypatch,
        {
            type_path(Gadget): materializer_name(GadgetMaterializer),
            "other.package.Thing": "package_that_is_not_installed:ThingMaterializer",
        },
    )
    assert calls == []

    assert materializer_for(Gadget(3)) is GadgetMaterializer
    assert materializer_for(5) is builtin.JSONMaterializer  # the broken one is never imported
    _, loaded = roundtrip(store, Gadget(4))

    assert loaded.size == 4
    assert calls == [ENTRY_POINT_GROUP]


def test_user_registration_beats_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, {"builtins.int": materializer_name(GadgetMaterializer)})

    assert materializer_for(1) is GadgetMaterializer
    register_materializer(int)(Modern)
    assert materializer_for(1) is Modern


def test_broken_entry_point_for_a_base_class_spares_handled_subclasses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SpecialGadget(Gadget):
        pass

    fake_entry_points(
        monkeypatch,
        {
            type_path(SpecialGadget): materializer_name(GadgetMaterializer),
            type_path(Gadget): "no_such_package.mod:Nope",
        },
    )

    assert materializer_for(SpecialGadget(1)) is GadgetMaterializer


def test_broken_entry_point_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, {type_path(Gadget): "no_such_package.mod:Nope"})

    with pytest.raises(MaterializerError, match="entry point .*Install the package"):
        materializer_for(Gadget(1))


def test_saving_with_a_broken_entry_point_names_the_artifact(
    monkeypatch: pytest.MonkeyPatch, store: LocalArtifactStore
) -> None:
    fake_entry_points(monkeypatch, {type_path(Gadget): "no_such_package.mod:Nope"})

    with pytest.raises(MaterializerError, match="Cannot save artifact 'g': ") as info:
        save_artifact(store, Gadget(1), name="g")

    assert info.value.artifact_name == "g"
    assert info.value.materializer == "no_such_package.mod:Nope"


def test_register_materializer_misuse_is_explained() -> None:
    with pytest.raises(TypeError, match="with parentheses"):
        register_materializer(GadgetMaterializer)
    with pytest.raises(TypeError, match="not a Materializer subclass"):
        register_materializer(int)(Gadget)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="names no type"):
        register_materializer()(GadgetMaterializer)
    with pytest.raises(TypeError, match="types or dotted type paths"):
        register_materializer(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no-colon", "is not a materializer name"),
        ("no_such_module_xyz:Thing", "cannot be imported"),
        (f"{__name__}:Missing", "cannot be imported"),
        (f"{__name__}:Gadget", "not a Materializer subclass"),
        (f"{__name__}:test.<locals>.M", "defined inside a function"),
    ],
)
def test_materializer_by_name_errors_end_with_a_fix(name: str, message: str) -> None:
    with pytest.raises(MaterializerError, match=message) as info:
        materializer_by_name(name)

    assert info.value.materializer == name
    assert str(info.value).endswith(".")


def test_locally_defined_registered_materializer_is_found_by_name() -> None:
    @register_materializer("some.Type")
    class Local(Materializer):
        pass

    assert materializer_by_name(materializer_name(Local)) is Local


def test_materializer_failure_is_wrapped_naming_artifact_type_and_materializer(
    store: LocalArtifactStore,
) -> None:
    class Exploding(Materializer):
        def save(self, value: Any, folder: Path) -> None:
            raise ValueError("boom")

    with pytest.raises(MaterializerError) as info:
        save_artifact(store, Gadget(1), name="model", materializer=Exploding)

    error = info.value
    assert isinstance(error.__cause__, ValueError)
    assert (error.artifact_name, error.data_type) == ("model", type_path(Gadget))
    assert error.materializer == materializer_name(Exploding)
    assert "'model'" in str(error) and "boom" in str(error)
    assert str(error).endswith(f"@register_materializer('{type_path(Gadget)}').")


def test_non_json_metadata_is_refused(store: LocalArtifactStore) -> None:
    class BadMetadata(GadgetMaterializer):
        def extract_metadata(self, value: Any) -> dict[str, Any]:
            return {"when": object()}

    with pytest.raises(MaterializerError, match="extract metadata from artifact 'g'"):
        save_artifact(store, Gadget(1), name="g", materializer=BadMetadata)
    assert store.list_uris() == []


def test_materializer_that_writes_nothing_is_refused(store: LocalArtifactStore) -> None:
    class Silent(Materializer):
        def save(self, value: Any, folder: Path) -> None:
            pass

    with pytest.raises(MaterializerError, match="wrote no files for artifact 'quiet'"):
        save_artifact(store, 1, name="quiet", materializer=Silent)


def test_load_failures_are_wrapped(store: LocalArtifactStore) -> None:
    class WrongReader(GadgetMaterializer):
        def load(self, folder: Path, data_type: str) -> Any:
            return json.loads((folder / "missing.json").read_text())

    register_materializer(Gadget)(WrongReader)
    saved = save_artifact(store, Gadget(1), name="g")

    with pytest.raises(MaterializerError, match="Could not load artifact 'loaded-g'") as info:
        load(store, saved, name="loaded-g")

    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert info.value.artifact_uri == saved.uri


def test_unknown_recorded_materializer_names_the_artifact(store: LocalArtifactStore) -> None:
    saved = save_artifact(store, 1, name="n")
    lost = materializer.SavedArtifact(**{**saved.__dict__, "materializer": "gone_pkg:Mat"})

    with pytest.raises(MaterializerError, match="Cannot load artifact 'n': .*gone_pkg:Mat"):
        load(store, lost, name="n")


def test_metadata_of_a_large_array_is_extracted_beside_the_write(store) -> None:
    import numpy as np

    from tests.unit.artifacts.helpers import roundtrip

    values = np.arange(2_000_000, dtype=np.float64)  # 16 MB: over the parallel threshold
    saved, loaded = roundtrip(store, values)
    assert saved.metadata["shape"] == [2_000_000]
    assert saved.metadata["min"] == 0.0 and saved.metadata["max"] == 1_999_999.0
    assert np.array_equal(loaded, values)


def test_metadata_failure_of_a_large_value_names_the_artifact(store, registry) -> None:
    import numpy as np
    import pytest

    from mlzen.artifacts.builtin import NumpyMaterializer
    from mlzen.artifacts.materializer import save_artifact
    from mlzen.errors import MaterializerError

    class Exploding(NumpyMaterializer):
        def extract_metadata(self, value):
            raise RuntimeError("stats broke")

    with pytest.raises(MaterializerError, match="'big'.*stats broke"):
        save_artifact(store, np.zeros(2_000_000), name="big", materializer=Exploding)
