"""``mlzen runs explain``: why a step was, or was not, a cache hit, shown as a diff."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import print_json

if TYPE_CHECKING:
    from mlzen.explain import CacheExplanation, Change

HASH_PREFIX = 12
MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


@click.command(
    "explain",
    epilog="Example: mlzen runs explain latest train\n\n"
    "STEP is the invocation id: train, or train_2 for the second call of train.",
)
@click.argument("run_ref", metavar="RUN")
@click.argument("step_id", metavar="STEP")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the explanation as JSON (stable keys)."
)
def explain(run_ref: str, step_id: str, as_json: bool) -> None:
    """Explain why STEP of RUN was or was not a cache hit, as a diff of its cache key."""
    from mlzen.client import Client
    from mlzen.explain import explain_step

    explanation = explain_step(Client(), run_ref, step_id)
    if as_json:
        print_json(explanation.to_dict())
        return
    render(explanation)


def render(explanation: CacheExplanation) -> None:
    """Print an explanation for people: a headline, then each differing part as a diff."""
    from rich.text import Text

    from mlzen.cli.output import console as make_console

    console = make_console()
    headline = Text()
    headline.append(explanation.step, style="bold")
    if explanation.step_name != explanation.step:
        headline.append(f" (step {explanation.step_name})")
    headline.append(f" in run {explanation.run_name}: ")
    headline.append(explanation.status, style="cyan" if explanation.cached else "yellow")
    console.print(headline)
    console.print(Text(explanation.summary, style="green" if explanation.cached else ""))
    diff = explanation.diff
    if diff is None or not (diff.parts or diff.source_diff):
        return
    if explanation.reason == "cache_disabled" and explanation.compared_with is not None:
        before = explanation.compared_with
        console.print(
            Text(f"For reference, against step '{before.step}' in run '{before.run_name}':")
        )
    for line in _diff_lines(explanation):
        console.print(line)


def _diff_lines(explanation: CacheExplanation) -> list[Any]:
    from rich.text import Text

    diff = explanation.diff
    assert diff is not None
    lines: list[Any] = []

    def section(title: str) -> None:
        lines.append(Text(title, style="bold"))

    def entry(change: str, label: str, detail: str = "", sep: str = "  ") -> None:
        mark, style = MARKS.get(change, ("~", "yellow"))
        text = Text(f"  {mark} ", style=style)
        text.append(label, style=style)
        if detail:
            text.append(f"{sep}{detail}")
        lines.append(text)

    if diff.functions or diff.packages or diff.source_diff:
        section("code")
        for change in diff.functions:
            own = " (the step itself)" if change.name == explanation.step_function else ""
            entry(change.change, change.name, _function_detail(change) + own)
        for change in diff.packages:
            entry(change.change, change.name, _arrow(change, plain=True))
        for line in diff.source_diff.splitlines():
            lines.append(Text(f"    {line}", style=_diff_style(line)))
    if diff.parameters:
        section("parameters")
        for change in diff.parameters:
            entry(change.change, change.name, _arrow(change), sep=": ")
    if diff.inputs:
        section("inputs")
        for item in diff.inputs:
            old = (item.old_hash or "-")[:HASH_PREFIX]
            new = (item.new_hash or "-")[:HASH_PREFIX]
            where = [f"from {item.producer}"] if item.producer else []
            if item.old_artifact or item.new_artifact:
                where.append(f"{item.old_artifact or '-'} → {item.new_artifact or '-'}")
            detail = f"content {old} → {new}" + (f"  ({', '.join(where)})" if where else "")
            entry(item.change, item.argument, detail, sep=": ")
    for title, changes in (("outputs", diff.outputs), ("settings", diff.settings)):
        if changes:
            section(title)
            for change in changes:
                entry(change.change, change.name, _arrow(change), sep=": ")
    if diff.other:
        section("other")
        for part in diff.other:
            entry("changed", part, "differs")
    return lines


def _function_detail(change: Change) -> str:
    if change.change == "added":
        return "now used"
    if change.change == "removed":
        return "no longer used"
    return "source changed"


def _value(value: Any, plain: bool) -> str:
    return str(value) if plain else json.dumps(value, default=repr)


def _arrow(change: Change, plain: bool = False) -> str:
    if change.change == "added":
        return f"(new) {_value(change.new, plain)}"
    if change.change == "removed":
        return f"{_value(change.old, plain)} (removed)"
    return f"{_value(change.old, plain)} → {_value(change.new, plain)}"


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    if line.startswith("@@"):
        return "cyan"
    return ""
