from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mlzen.runtime import fingerprint
from mlzen.runtime.caching import cache_key, cache_key_parts
from mlzen.spec import OutputSpec, StepSpec


def helper(x):
    return x + 1


class Scaler:
    def apply(self, x):
        return helper(x) * 2


def uses_helper(x):
    return helper(x)


def uses_class(x):
    return Scaler().apply(x)


def uses_numpy(x):
    return np.asarray(x)


def test_fingerprint_covers_called_helpers() -> None:
    parts = fingerprint.code_fingerprint(uses_helper)
    assert f"{__name__}:uses_helper" in parts
    assert f"{__name__}:helper" in parts


def test_fingerprint_follows_classes_and_their_methods() -> None:
    parts = fingerprint.code_fingerprint(uses_class)
    assert f"{__name__}:Scaler" in parts
    assert f"{__name__}:helper" in parts


def test_installed_packages_count_by_version() -> None:
    parts = fingerprint.code_fingerprint(uses_numpy)
    assert f"numpy=={np.__version__}" in parts
    assert not any(key.startswith("numpy:") for key in parts)


def test_stdlib_and_mlzen_are_not_part_of_the_fingerprint() -> None:
    import json

    from mlzen import log_metadata

    def uses_stdlib(x):
        log_metadata({"x": x})
        return json.dumps(x)

    parts = fingerprint.code_fingerprint(uses_stdlib)
    assert list(parts) == [
        f"{__name__}:test_stdlib_and_mlzen_are_not_part_of_the_fingerprint.<locals>.uses_stdlib"
    ]


def _define(source: str, namespace: dict) -> None:
    exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 - a notebook cell, in short


def test_rebinding_a_helper_changes_the_fingerprint_and_rebinding_it_back_restores_it() -> None:
    cell: dict = {"__name__": "__main__"}
    _define("def helper():\n    return 1\ndef uses():\n    return helper()\n", cell)
    first = fingerprint.code_fingerprint(cell["uses"])
    original = cell["helper"]
    _define("def helper():\n    return 2\n", cell)
    second = fingerprint.code_fingerprint(cell["uses"])
    assert first != second
    assert set(first) == set(second)  # the same names, one of them with new code
    cell["helper"] = original
    assert fingerprint.code_fingerprint(cell["uses"]) == first


def test_remembered_sources_go_with_the_functions() -> None:
    cell: dict = {"__name__": "__main__"}
    before = len(fingerprint._code_facts._entries)
    for value in range(200):
        _define(f"def helper():\n    return {value}\n", cell)
        fingerprint.code_fingerprint(cell["helper"])
    assert len(fingerprint._code_facts._entries) <= before + 2


def spec(parameters: dict) -> StepSpec:
    return StepSpec(
        id="s", name="s", source="m:s", parameters=parameters, outputs=[OutputSpec("output", "int")]
    )


CODE = {"m:helper": "abc"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@given(json_values, json_values)
def test_cache_keys_are_stable_and_tell_parameters_apart(a, b) -> None:
    key_a = cache_key(cache_key_parts(spec({"p": a}), CODE, {}))
    assert key_a == cache_key(cache_key_parts(spec({"p": a}), CODE, {}))
    key_b = cache_key(cache_key_parts(spec({"p": b}), CODE, {}))
    assert (key_a == key_b) == (
        __import__("json").dumps(a, sort_keys=True) == __import__("json").dumps(b, sort_keys=True)
    )


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_cache_keys_differ_for_different_input_content(h1, h2) -> None:
    k1 = cache_key(cache_key_parts(spec({}), CODE, {"x": h1}))
    k2 = cache_key(cache_key_parts(spec({}), CODE, {"x": h2}))
    assert (k1 == k2) == (h1 == h2)
