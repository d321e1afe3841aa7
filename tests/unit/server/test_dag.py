"""The layered DAG layout and its SVG: layers respect edges, nodes never overlap,
crossings are reduced, and every text is escaped."""

from __future__ import annotations

import re
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from mlzen.server.dashboard import dag
from mlzen.server.dashboard.dag import Edge, Node, layout, render_svg


def nodes(*ids: str) -> list[Node]:
    return [Node(id=i, label=i) for i in ids]


def edges(*pairs: str) -> list[Edge]:
    return [Edge(*pair.split(">")) for pair in pairs]


def assert_sound(graph: dag.Layout, edge_list: list[Edge]) -> None:
    """Every edge points to a later layer and no two boxes of a column overlap."""
    for edge in edge_list:
        assert graph.nodes[edge.source].layer < graph.nodes[edge.target].layer
    columns: dict[float, list[float]] = {}
    for placed in graph.nodes.values():
        columns.setdefault(placed.x, []).append(placed.y)
    for ys in columns.values():
        for upper, lower in pairwise(sorted(ys)):
            assert lower - upper >= dag.NODE_HEIGHT
    for placed in graph.nodes.values():
        assert 0 <= placed.x and placed.x + dag.NODE_WIDTH <= graph.width
        assert 0 <= placed.y and placed.y + dag.NODE_HEIGHT <= graph.height


def test_longest_path_layering_of_a_diamond_with_a_shortcut() -> None:
    edge_list = edges("a>b", "b>c", "a>c", "c>d")
    layers = dag.assign_layers(["a", "b", "c", "d"], edge_list)
    assert layers == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_a_long_edge_gets_dummies_and_is_routed_through_every_layer_it_crosses() -> None:
    edge_list = edges("a>b", "b>c", "c>d", "a>d")
    graph = layout(nodes("a", "b", "c", "d"), edge_list)
    assert_sound(graph, edge_list)
    assert len(graph.dummies) == 2
    long_edge = next(r for r in graph.edges if r.edge == Edge("a", "d"))
    assert len(long_edge.points) == 4  # source, two dummies, target
    xs = [x for x, _ in long_edge.points]
    assert xs == sorted(xs)


def test_barycenter_ordering_removes_the_crossings_of_a_known_graph() -> None:
    # Given in an order where both gaps cross: each node feeds the other one's partner.
    edge_list = edges("a1>b2", "a2>b1", "b1>c2", "b2>c1")
    start = [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]]
    links = [(e.source, e.target) for e in edge_list]
    assert dag.count_crossings(start, links) == 2
    graph = layout(nodes("a1", "a2", "b1", "b2", "c1", "c2"), edge_list)
    assert graph.crossings == 0
    assert_sound(graph, edge_list)


def test_crossing_count_of_a_complete_bipartite_graph() -> None:
    # Every two-layer drawing of K(n,n) has C(n,2)^2 crossings, whatever the order.
    upper, lower = ["a", "b", "c"], ["x", "y", "z"]
    links = [(u, v) for u in upper for v in lower]
    assert dag.count_crossings([upper, lower], links) == 9
    graph = layout(nodes(*upper, *lower), [Edge(u, v) for u, v in links])
    assert graph.crossings == 9


def test_a_cycle_in_the_data_does_not_break_the_layout() -> None:
    edge_list = edges("a>b", "b>c", "c>a")
    graph = layout(nodes("a", "b", "c"), edge_list)
    assert set(graph.nodes) == {"a", "b", "c"}
    assert len(graph.edges) == 2  # the edge closing the cycle is not drawn


def test_edges_to_unknown_nodes_are_dropped_and_an_empty_graph_renders() -> None:
    graph = layout(nodes("a"), edges("a>ghost"))
    assert graph.edges == []
    assert "<svg" in render_svg(layout([], []), title="empty")


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=14),
    data=st.data(),
)
def test_any_dag_gets_a_sound_layout(size: int, data: st.DataObject) -> None:
    ids = [f"n{i}" for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    chosen = data.draw(st.lists(st.sampled_from(pairs), unique=True, max_size=20)) if pairs else []
    edge_list = [Edge(ids[i], ids[j]) for i, j in chosen]
    graph = layout(nodes(*ids), edge_list)
    assert set(graph.nodes) == set(ids)
    assert_sound(graph, edge_list)
    assert len(graph.edges) == len(edge_list)
    initial = dag.count_crossings(_initial_layers(ids, edge_list), _links(ids, edge_list))
    assert graph.crossings <= initial


def _initial_layers(ids: list[str], edge_list: list[Edge]) -> list[list[str]]:
    """The layers before ordering, built like ``layout`` builds them."""
    layer_of = dag.assign_layers(ids, edge_list)
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values()) + 1)]
    for node in ids:
        layers[layer_of[node]].append(node)
    for index, edge in enumerate(edge_list):
        for depth in range(layer_of[edge.source] + 1, layer_of[edge.target]):
            layers[depth].append(f"\0{index}:{depth}")
    return layers


def _links(ids: list[str], edge_list: list[Edge]) -> list[tuple[str, str]]:
    layer_of = dag.assign_layers(ids, edge_list)
    links = []
    for index, edge in enumerate(edge_list):
        chain = [edge.source]
        chain += [
            f"\0{index}:{depth}"
            for depth in range(layer_of[edge.source] + 1, layer_of[edge.target])
        ]
        links += list(pairwise([*chain, edge.target]))
    return links


def test_svg_marks_status_cache_links_and_escapes_text() -> None:
    graph = layout(
        [
            Node("load", "load", status="cached", href="/runs/r/steps/load"),
            Node("<b>", "<script>alert(1)</script>", status="running", href='/x?a="b"'),
        ],
        [Edge("load", "<b>", label="raw & <clean>")],
    )
    svg = str(render_svg(graph, title='run "1"'))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'data-node="load" data-status="cached"' in svg
    assert 'data-status="running"' in svg
    assert '<a href="/runs/r/steps/load"' in svg
    assert 'href="/x?a=&quot;b&quot;"' in svg
    assert "raw &amp; &lt;clean&gt;" in svg
    assert svg.count('class="dag-cache-mark"') == 2  # shown by CSS for cached steps only
    assert re.search(r'aria-label="run &quot;1&quot;"', svg)


def test_a_long_edge_label_is_cut_to_the_gap_and_kept_whole_in_its_title() -> None:
    label = "a_very_long_artifact_name_that_does_not_fit"
    svg = str(render_svg(layout(nodes("a", "b"), [Edge("a", "b", label)]), title="t"))
    shown = re.search(r'class="dag-edge-label"[^>]*>([^<]*)<title>([^<]*)</title>', svg)
    assert shown is not None
    assert shown.group(1).endswith("…")
    assert len(shown.group(1)) * dag.CHAR_WIDTH <= dag.LAYER_GAP
    assert shown.group(2) == label
