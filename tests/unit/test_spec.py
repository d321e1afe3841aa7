"""``PipelineSpec``: serialisation, topological order, cycles and dangling references."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlzen.errors import CycleError, PipelineDefinitionError
from mlzen.spec import InputRef, OutputSpec, PipelineSpec, StepSpec


def make_step(
    step_id: str,
    inputs: dict[str, tuple[str, str]] | None = None,
    after: list[str] | None = None,
    outputs: tuple[str, ...] = ("output",),
) -> StepSpec:
    return StepSpec(
        id=step_id,
        name=step_id.split("_")[0],
        source=f"module:{step_id}",
        inputs={arg: InputRef(*ref) for arg, ref in (inputs or {}).items()},
        after=list(after or []),
        outputs=[OutputSpec(name, "builtins.int") for name in outputs],
    )


def make_spec(*steps: StepSpec, name: str = "p") -> PipelineSpec:
    return PipelineSpec(name=name, steps={s.id: s for s in steps})


def diamond() -> PipelineSpec:
    return make_spec(
        make_step("top"),
        make_step("left", {"x": ("top", "output")}),
        make_step("right", {"x": ("top", "output")}),
        make_step("bottom", {"a": ("left", "output"), "b": ("right", "output")}),
    )


def assert_respects_edges(spec: PipelineSpec, order: list[str]) -> None:
    assert sorted(order) == sorted(spec.steps)
    position = {step_id: index for index, step_id in enumerate(order)}
    for step in spec:
        for parent in step.upstream:
            assert position[parent] < position[step.id], (parent, step.id)


# --- plain data ---------------------------------------------------------------------


def test_json_round_trip_keeps_every_field() -> None:
    step = StepSpec(
        id="train_2",
        name="train",
        source="pkg.mod:train",
        inputs={"df": InputRef("split", "train")},
        parameters={"C": 0.5, "layers": [1, 2], "opts": {"a": None}},
        after=["load"],
        outputs=[OutputSpec("model", "builtins.dict"), OutputSpec("score", "builtins.float")],
        enable_cache=False,
        retries=3,
        retry_delay=0.25,
        settings={"gpu": 1},
        extra={"owner": "me"},
    )
    spec = PipelineSpec(
        name="training",
        steps={
            "load": make_step("load"),
            "split": make_step("split", {"df": ("load", "output")}, outputs=("train", "test")),
            "train_2": step,
        },
        parameters={"C": 0.5},
        enable_cache=False,
        settings={"docker": {"image": "x"}},
    )

    data = json.loads(json.dumps(spec.to_dict()))
    again = PipelineSpec.from_dict(data)

    assert again == spec
    assert list(again.steps) == ["load", "split", "train_2"]
    assert again.steps["train_2"].inputs["df"] == InputRef("split", "train")
    assert isinstance(again.steps["train_2"].outputs[0], OutputSpec)
    assert again.to_dict() == spec.to_dict()


def test_to_dict_is_plain_data() -> None:
    data = diamond().to_dict()
    assert data["name"] == "p"
    assert [s["id"] for s in data["steps"]] == ["top", "left", "right", "bottom"]
    assert data["steps"][3]["inputs"] == {
        "a": {"step": "left", "output": "output"},
        "b": {"step": "right", "output": "output"},
    }
    assert data["steps"][0]["outputs"] == [{"name": "output", "type": "builtins.int"}]


def test_from_dict_fills_defaults() -> None:
    spec = PipelineSpec.from_dict(
        {"name": "p", "steps": [{"id": "a", "name": "a", "source": "m:a"}]}
    )
    assert spec.parameters == {}
    assert spec.enable_cache is True
    assert spec.settings == {}
    step = spec.steps["a"]
    assert step.inputs == {}
    assert step.outputs == []
    assert step.after == []
    assert step.retries == 0


def test_from_dict_does_not_mutate_its_input() -> None:
    data = diamond().to_dict()
    snapshot = json.dumps(data, sort_keys=True)
    PipelineSpec.from_dict(data)
    assert json.dumps(data, sort_keys=True) == snapshot


def test_upstream_joins_inputs_and_after() -> None:
    step = make_step("s", {"a": ("x", "output"), "b": ("y", "o2")}, after=["z", "x"])
    assert step.upstream == {"x", "y", "z"}
    assert step.output_names == ["output"]


def test_downstream_maps_each_step_to_its_children() -> None:
    assert diamond().downstream() == {
        "top": {"left", "right"},
        "left": {"bottom"},
        "right": {"bottom"},
        "bottom": set(),
    }


def test_iterating_a_spec_yields_step_specs_in_call_order() -> None:
    assert [s.id for s in diamond()] == ["top", "left", "right", "bottom"]


# --- topological order --------------------------------------------------------------


def test_topological_order_of_a_diamond() -> None:
    spec = diamond()
    order = spec.topological_order()
    assert order[0] == "top"
    assert order[-1] == "bottom"
    assert_respects_edges(spec, order)


def test_topological_order_respects_after_edges() -> None:
    spec = make_spec(make_step("b", after=["a"]), make_step("a"), make_step("c", after=["b"]))
    assert spec.topological_order() == ["a", "b", "c"]


def test_topological_order_of_independent_steps_keeps_call_order() -> None:
    spec = make_spec(make_step("c"), make_step("a"), make_step("b"))
    assert spec.topological_order() == ["c", "a", "b"]


def test_topological_order_is_deterministic() -> None:
    assert diamond().topological_order() == diamond().topological_order()


def test_steps_declared_before_their_parents_are_ordered_after_them() -> None:
    spec = make_spec(
        make_step("late", {"x": ("early", "output")}),
        make_step("early"),
    )
    assert spec.topological_order() == ["early", "late"]


def test_fan_out_and_fan_in() -> None:
    leaves = [make_step(f"leaf{i}", {"x": ("root", "output")}) for i in range(5)]
    sink = make_step("sink", {f"x{i}": (f"leaf{i}", "output") for i in range(5)})
    spec = make_spec(make_step("root"), *leaves, sink)
    order = spec.topological_order()
    assert order[0] == "root"
    assert order[-1] == "sink"
    assert_respects_edges(spec, order)


# --- cycles -------------------------------------------------------------------------


def test_two_step_cycle_names_both_steps() -> None:
    spec = make_spec(
        make_step("a", {"x": ("b", "output")}),
        make_step("b", {"x": ("a", "output")}),
    )
    with pytest.raises(CycleError) as info:
        spec.topological_order()
    message = str(info.value)
    assert "'p'" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message
    assert info.value.pipeline_name == "p"
    assert set(info.value.cycle) == {"a", "b"}
    assert info.value.cycle[0] == info.value.cycle[-1]
    assert isinstance(info.value, PipelineDefinitionError)


def test_cycle_is_listed_in_running_order() -> None:
    # a feeds b, b feeds c, c feeds a: the message follows the data.
    spec = make_spec(
        make_step("a", {"x": ("c", "output")}),
        make_step("b", {"x": ("a", "output")}),
        make_step("c", {"x": ("b", "output")}),
    )
    with pytest.raises(CycleError) as info:
        spec.topological_order()
    assert info.value.cycle == ["a", "b", "c", "a"]
    assert "a -> b -> c -> a" in str(info.value)


def test_cycle_through_after_edges() -> None:
    spec = make_spec(make_step("a", after=["b"]), make_step("b", after=["a"]))
    with pytest.raises(CycleError):
        spec.topological_order()


def test_self_loop_is_a_cycle() -> None:
    spec = make_spec(make_step("a", after=["a"]))
    with pytest.raises(CycleError) as info:
        spec.topological_order()
    assert info.value.cycle == ["a", "a"]


def test_cycle_downstream_of_a_valid_part_names_only_the_cycle() -> None:
    spec = make_spec(
        make_step("root"),
        make_step("x", {"i": ("root", "output"), "j": ("y", "output")}),
        make_step("y", {"i": ("x", "output")}),
        make_step("tail", {"i": ("y", "output")}),
    )
    with pytest.raises(CycleError) as info:
        spec.topological_order()
    assert set(info.value.cycle) == {"x", "y"}
    assert "root" not in info.value.cycle
    assert "tail" not in info.value.cycle


# --- dangling references ------------------------------------------------------------


def test_unknown_input_step_is_an_error() -> None:
    spec = make_spec(make_step("a", {"df": ("ghost", "output")}))
    with pytest.raises(PipelineDefinitionError) as info:
        spec.topological_order()
    assert not isinstance(info.value, CycleError)
    assert "'ghost'" in str(info.value)
    assert "'a'" in str(info.value)
    assert "'df'" in str(info.value)
    assert info.value.step_name == "a"
    assert info.value.argument == "df"


def test_unknown_input_output_is_an_error() -> None:
    spec = make_spec(
        make_step("a", outputs=("train", "test")),
        make_step("b", {"df": ("a", "valid")}),
    )
    with pytest.raises(PipelineDefinitionError) as info:
        spec.topological_order()
    message = str(info.value)
    assert "'valid'" in message
    assert "'a'" in message
    assert "train" in message and "test" in message
    assert info.value.step_name == "b"


def test_input_from_a_step_with_no_outputs_is_an_error() -> None:
    spec = make_spec(make_step("a", outputs=()), make_step("b", {"df": ("a", "output")}))
    with pytest.raises(PipelineDefinitionError, match="no outputs"):
        spec.check_references()


def test_unknown_after_step_is_an_error() -> None:
    spec = make_spec(make_step("a"), make_step("b", after=["ghost"]))
    with pytest.raises(PipelineDefinitionError) as info:
        spec.topological_order()
    assert "'ghost'" in str(info.value)
    assert "'b'" in str(info.value)
    assert info.value.argument == "after"


def test_downstream_with_a_dangling_reference_is_a_definition_error() -> None:
    spec = make_spec(make_step("a", after=["ghost"]))
    with pytest.raises(PipelineDefinitionError, match="'ghost'"):
        spec.downstream()


def test_empty_spec_has_an_empty_order() -> None:
    assert make_spec().topological_order() == []


# --- properties ---------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1) -> PipelineSpec:
    """A random DAG: edges only from a lower to a higher index, as data or .after()."""
    count = draw(st.integers(min_value=min_nodes, max_value=12))
    ids = [f"s{i}" for i in range(count)]
    # Shuffle the declaration order so the order is not just the call order.
    declared = draw(st.permutations(ids))
    steps: dict[str, StepSpec] = {}
    for index, step_id in enumerate(ids):
        parents = draw(
            st.sets(st.sampled_from(ids[:index]), max_size=index) if index else st.just(set())
        )
        as_after = draw(st.sets(st.sampled_from(sorted(parents)))) if parents else set()
        inputs = {f"in_{p}": (p, "output") for p in sorted(parents - as_after)}
        steps[step_id] = make_step(step_id, inputs, after=sorted(as_after))
    return PipelineSpec(name="random", steps={i: steps[i] for i in declared})


@given(dags())
def test_topological_order_respects_every_edge(spec: PipelineSpec) -> None:
    order = spec.topological_order()
    assert len(order) == len(set(order)) == len(spec.steps)
    assert_respects_edges(spec, order)


@given(dags(), st.data())
def test_json_round_trip_of_random_dags(spec: PipelineSpec, data: st.DataObject) -> None:
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.topological_order() == spec.topological_order()


@given(dags(min_nodes=1), st.data())
def test_a_back_edge_always_raises_cycle_error(spec: PipelineSpec, data: st.DataObject) -> None:
    ids = sorted(spec.steps, key=lambda s: int(s[1:]))
    # Pick a path-connected pair (low reaches high, or low == high for a self-loop),
    # then add the edge high -> low: "low waits for high" closes a cycle.
    low = data.draw(st.sampled_from(ids))
    reachable = _descendants(spec, low) | {low}
    high = data.draw(st.sampled_from(sorted(reachable)))
    spec.steps[low].after.append(high)

    with pytest.raises(CycleError) as info:
        spec.topological_order()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert " -> ".join(cycle) in str(info.value)
    # Every consecutive pair in the reported cycle is a real edge, parent first.
    for parent, child in zip(cycle, cycle[1:], strict=False):
        assert parent in spec.steps[child].upstream


def _descendants(spec: PipelineSpec, start: str) -> set[str]:
    children = spec.downstream()
    found: set[str] = set()
    stack = [start]
    while stack:
        for child in children[stack.pop()]:
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
