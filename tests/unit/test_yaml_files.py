"""The bounded YAML loader every YAML file goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlzen import yaml_files
from mlzen.errors import ConfigError
from mlzen.yaml_files import MAX_DEPTH, load_yaml, read_yaml


def load(text: str) -> object:
    return load_yaml(text, what="The file", fix="Fix it.")


def bomb(levels: int, width: int = 10) -> str:
    text = "a0: &a0 [" + ", ".join(["x"] * width) + "]\n"
    for level in range(1, levels):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]\n"
    return text


def test_plain_documents_load_as_safe_load_would() -> None:
    text = "a: 1\nb: [x, {c: 2.5}]\nd: &d {e: true}\nf: *d\ng:\n  <<: *d\n  h: null\n"

    assert load(text) == {
        "a": 1,
        "b": ["x", {"c": 2.5}],
        "d": {"e": True},
        "f": {"e": True},
        "g": {"e": True, "h": None},
    }
    assert load("") is None


def test_aliases_may_expand_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_files, "MAX_VALUES", 10_000)

    assert len(load(bomb(3))["a2"]) == 10  # 1 + 10 + 100 + 1,000 values: allowed
    with pytest.raises(ConfigError) as info:
        load(bomb(4))  # 10,000 strings and more
    assert "expands to more than 10,000 values" in str(info.value)
    assert info.value.line == 4


def test_a_billion_laughs_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="aliases"):
        load(bomb(9))


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="alias inside the very node"):
        load("a: &a [1, *a]\n")


def test_nesting_is_bounded_without_a_recursion_error() -> None:
    load("[" * MAX_DEPTH + "]" * MAX_DEPTH)

    with pytest.raises(ConfigError, match=f"deeper than {MAX_DEPTH} levels"):
        load("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(ConfigError, match=f"deeper than {MAX_DEPTH} levels"):
        load("[" * 50_000 + "]" * 50_000)


def test_invalid_yaml_names_the_file_and_ends_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [unclosed\n")

    with pytest.raises(ConfigError) as info:
        read_yaml(path, what=f"Config '{path}'", fix="Fix it.")

    assert str(path) in str(info.value) and str(info.value).endswith("Fix it.")
    assert info.value.path == str(path)


def test_a_file_too_large_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yaml_files, "MAX_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 200)

    with pytest.raises(ConfigError, match="more than the 100"):
        read_yaml(path, what="big.yaml", fix="")


def test_tags_build_no_objects() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load("!!python/object/apply:os.system ['true']")
