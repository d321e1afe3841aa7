"""The graphs the dashboard draws, built from a recorded spec and step runs."""

from __future__ import annotations

from mlzen.server.dashboard import graphs

SPEC = {
    "steps": [
        {"id": "load", "name": "load", "inputs": {}, "after": []},
        {
            "id": "fit",
            "name": "fit",
            "inputs": {
                "train": {"step": "load", "output": "train"},
                "test": {"step": "load", "output": "test"},
            },
            "after": [],
        },
        {"id": "fit_2", "name": "fit", "inputs": {}, "after": ["load"]},
    ]
}


def test_a_run_graph_has_a_node_per_invocation_and_merged_edge_labels() -> None:
    nodes, edges = graphs.run_graph(
        SPEC, {"load": {"status": "completed"}}, run_id="r1", run_status="running"
    )
    assert [(n.id, n.status, n.href) for n in nodes] == [
        ("load", "completed", "/runs/r1/steps/load"),
        ("fit", "pending", "/runs/r1/steps/fit"),
        ("fit_2", "pending", "/runs/r1/steps/fit_2"),
    ]
    labels = {(e.source, e.target): e.label for e in edges}
    assert labels == {("load", "fit"): "train, test", ("load", "fit_2"): ""}
    assert "fit" in nodes[2].tooltip  # the function of a second invocation


def test_steps_without_a_step_run_did_not_run_once_the_run_ended() -> None:
    nodes, _ = graphs.run_graph(
        SPEC, {"load": {"status": "failed"}}, run_id="r1", run_status="failed"
    )
    assert [n.status for n in nodes] == ["failed", "not_run", "not_run"]


def test_a_pipeline_graph_without_a_run_has_no_statuses_or_links() -> None:
    nodes, _ = graphs.run_graph(SPEC, {}, run_id=None, run_status="")
    assert {(n.status, n.href) for n in nodes} == {("", None)}
