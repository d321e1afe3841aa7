"""The graphs the dashboard draws: a run's DAG and an artifact version's lineage, as
``dag.Node`` / ``dag.Edge`` lists ready for ``dag.layout``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mlzen.server.dashboard.dag import Edge, Node
from mlzen.server.dashboard.queries import Lineage

PENDING = "pending"
NOT_RUN = "not_run"


def step_href(run_id: str, step_id: str) -> str:
    return f"/runs/{quote(run_id)}/steps/{quote(step_id)}"


def artifact_href(version_id: str) -> str:
    return f"/artifact-versions/{quote(version_id)}"


def step_status(step: dict[str, Any] | None, run_status: str) -> str:
    """A step invocation's status; without a step run it is pending while the run runs."""
    if step is not None:
        return str(step["status"])
    return PENDING if run_status == "running" else NOT_RUN


def run_graph(
    spec: dict[str, Any],
    step_runs: dict[str, dict[str, Any]],
    *,
    run_id: str | None,
    run_status: str,
) -> tuple[list[Node], list[Edge]]:
    """A run's DAG from its recorded spec: one node per invocation, coloured by the
    status of its step run (by invocation id in ``step_runs``), one edge per pair of
    connected invocations labelled with the artifacts passed along it."""
    nodes = []
    labels: dict[tuple[str, str], list[str]] = {}
    for step in spec.get("steps", []):
        status = step_status(step_runs.get(step["id"]), run_status) if run_id else ""
        nodes.append(
            Node(
                id=step["id"],
                label=step["id"],
                status=status,
                # live.js rewrites this line as the status changes
                detail=status.replace("_", " ") if status else step["name"],
                href=step_href(run_id, step["id"]) if run_id else None,
                tooltip=f"{step['id']} ({step['name']}): {status or 'step'}",
            )
        )
        for ref in step.get("inputs", {}).values():
            labels.setdefault((ref["step"], step["id"]), []).append(ref["output"])
        for parent in step.get("after", []):
            labels.setdefault((parent, step["id"]), [])
    edges = [
        Edge(source, target, ", ".join(dict.fromkeys(names)))
        for (source, target), names in labels.items()
    ]
    return nodes, edges


def lineage_graph(found: Lineage, focus: str) -> tuple[list[Node], list[Edge]]:
    """An artifact version's lineage: artifact versions and the step runs between them."""
    nodes = []
    for version_id, version in found.versions.items():
        label = f"{version['name']}:{version['version']}"
        nodes.append(
            Node(
                id=version_id,
                label=label,
                status="focus" if version_id == focus else "artifact",
                detail=str(version["data_type"]).rpartition(".")[2],
                href=artifact_href(version_id),
                kind="artifact",
                tooltip=f"{label} ({version['data_type']})",
            )
        )
    for step_run_id, step in found.step_runs.items():
        nodes.append(
            Node(
                id=step_run_id,
                label=step["step_id"],
                status=step["status"],
                detail=step["run"],
                href=step_href(step["run_id"], step["step_id"]),
                tooltip=f"step {step['step_id']} of run {step['run']}: {step['status']}",
            )
        )
    edges = [Edge(source, target) for source, target, _name in sorted(found.edges)]
    return nodes, edges
