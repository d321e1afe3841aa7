"""``mlzen diff``: what changed between two runs: parameters, code, data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import json_option, print_json, print_table

if TYPE_CHECKING:
    from mlzen.comparison import ArtifactDiff, ModelDiff, RunDiff, Stats
    from mlzen.explain import Change

MAX_WEIGHT_ROWS = 10
MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


@click.command(
    "diff",
    epilog="Example: mlzen diff training-1 latest --artifact features\n\n"
    "RUN_A and RUN_B are run ids, unique id prefixes, names or 'latest'.",
)
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option(
    "--artifact",
    "artifact",
    metavar="NAME",
    default=None,
    help="Compare only this output (output name, artifact name or step.output).",
)
@json_option
def diff(run_a: str, run_b: str, artifact: str | None, as_json: bool) -> None:
    """Compare two runs: parameters, metadata, step code and every shared output's data."""
    from mlzen.client import Client

    result = Client().compare_runs(run_a, run_b, artifact=artifact)
    if as_json:
        print_json(result.to_dict())
        return
    render(result)


def render(result: RunDiff) -> None:
    """Print a run diff for people: a headline, then one section per kind of change."""
    from rich.text import Text

    from mlzen.cli.output import console as make_console

    console = make_console()
    console.print(Text(f"{result.old.name} → {result.new.name}", style="bold"))
    _changes(console, "Parameters", result.parameters)
    _changes(console, "Run metadata", result.metadata)
    for step_id in result.steps_added:
        console.print(Text(f"+ step {step_id} (only in {result.new.name})", style="green"))
    for step_id in result.steps_removed:
        console.print(Text(f"- step {step_id} (only in {result.old.name})", style="red"))
    for step in result.steps:
        _changes(console, f"Step {step.step}: parameters", step.parameters)
        _changes(console, f"Step {step.step}: metadata", step.metadata)
        if step.code_changed or step.source_diff:
            functions = ", ".join(step.changed_functions) or "its source"
            console.print(Text(f"Step {step.step}: code changed ({functions})", style="bold"))
            for line in step.source_diff.splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                console.print(Text(f"  {line}", style=style))
    for artifact in result.artifacts:
        _artifact(console, artifact)
    if not _anything(result):
        console.print("No differences.")


def _anything(result: RunDiff) -> bool:
    steps = any(s.parameters or s.metadata or s.code_changed or s.source_diff for s in result.steps)
    data = any(not a.identical or a.metadata for a in result.artifacts)
    return bool(
        result.parameters
        or result.metadata
        or result.steps_added
        or result.steps_removed
        or steps
        or data
    )


def _changes(console: Any, title: str, changes: list[Change]) -> None:
    from rich.text import Text

    if not changes:
        return
    console.print(Text(title, style="bold"))
    for change in changes:
        mark, style = MARKS.get(change.change, ("~", "yellow"))
        old, new = _short(change.old), _short(change.new)
        detail = {"added": new, "removed": old}.get(change.change, f"{old} → {new}")
        console.print(Text(f"  {mark} {change.name}: {detail}", style=style))


def _artifact(console: Any, artifact: ArtifactDiff) -> None:
    from rich.text import Text

    label = f"{artifact.step}.{artifact.output} ({artifact.old} → {artifact.new})"
    if artifact.identical:
        console.print(Text(f"{label}: identical", style="dim"))
        _changes(console, f"{label}: metadata", artifact.metadata)
        return
    console.print(Text(f"{label}: {artifact.kind}", style="bold"))
    if artifact.data_type_old != artifact.data_type_new:
        console.print(f"  type {artifact.data_type_old} → {artifact.data_type_new}")
    frame, array, values = artifact.dataframe, artifact.array, artifact.values
    if artifact.model is not None:
        _model(console, artifact.model)
    elif frame is not None:
        console.print(f"  rows {frame.rows_old} → {frame.rows_new}")
        for column in frame.added_columns:
            console.print(Text(f"  + column {column}", style="green"))
        for column in frame.removed_columns:
            console.print(Text(f"  - column {column}", style="red"))
        for change in frame.dtype_changes:
            console.print(Text(f"  ~ {change.name}: {change.old} → {change.new}", style="yellow"))
        print_table(
            None,
            ["column", "kind", "mean", "std", "min", "max", "nulls", "psi", "ks", "tvd"],
            (
                [
                    c.name,
                    c.kind,
                    _shift(c.old.mean, c.new.mean),
                    _shift(c.old.std, c.new.std),
                    _shift(c.old.min, c.new.min),
                    _shift(c.old.max, c.new.max),
                    _shift(c.old.nulls, c.new.nulls),
                    _number(c.psi),
                    _number(c.ks),
                    _number(c.tvd),
                ]
                for c in frame.columns
            ),
        )
    elif array is not None:
        console.print(f"  shape {array.shape_old} → {array.shape_new}")
        console.print(f"  dtype {array.dtype_old} → {array.dtype_new}")
        if array.old is not None and array.new is not None:
            console.print(f"  {_stat_line(array.old, array.new)}")
        if array.max_abs_diff is not None:
            console.print(f"  max abs difference {_number(array.max_abs_diff)}")
    elif values is not None:
        for path in values.added:
            console.print(Text(f"  + {path}", style="green"))
        for path in values.removed:
            console.print(Text(f"  - {path}", style="red"))
        for change in values.changed:
            console.print(Text(f"  ~ {change.name}: {change.old!r} → {change.new!r}", "yellow"))
    else:
        console.print("  content differs (no structured comparison for this type)")
    _changes(console, f"{label}: metadata", artifact.metadata)


def _model(console: Any, model: ModelDiff) -> None:
    """A model diff as one table of what changed: class, hyper-parameters, parameter
    count, weight shapes, then the weights whose values moved most."""
    rows: list[tuple[str, str, str]] = []
    if model.class_old != model.class_new:
        rows.append(("class", model.class_old, model.class_new))
    for change in model.hyperparameters:
        rows.append((change.name, _value(change.old), _value(change.new)))
    if model.parameter_count_old is not None or model.parameter_count_new is not None:
        rows.append(
            ("parameter count", str(model.parameter_count_old), str(model.parameter_count_new))
        )
    for change in model.shape_changes:
        rows.append((f"shape {change.name}", _value(change.old), _value(change.new)))
    if model.max_abs_weight_diff is not None:
        rows.append(("max abs weight difference", "", _number(model.max_abs_weight_diff)))
    console.print(f"  {model.framework} model {model.class_new}")
    if rows:
        print_table(None, ["", "old", "new"], rows)
    if model.weights:
        shown = model.weights[:MAX_WEIGHT_ROWS]
        print_table(
            None,
            ["weight", "shape", "max abs diff"],
            [
                (w.name, "x".join(map(str, w.shape)) or "scalar", _number(w.max_abs_diff))
                for w in shown
            ],
        )
        if len(model.weights) > len(shown):
            console.print(f"  ({len(model.weights) - len(shown)} more changed weights; see --json)")


def _value(value: Any, limit: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # class paths, solver names: no quotes needed
        return value if len(value) <= limit else value[: limit - 1] + "…"
    return _short(value, limit)


def _short(value: Any, limit: int = 60) -> str:
    # Auto-extracted metadata (per-column stats) can be long; --json has it in full.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stat_line(old: Stats, new: Stats) -> str:
    return "  ".join(
        f"{name} {_shift(getattr(old, name), getattr(new, name))}"
        for name in ("mean", "std", "min", "max", "nulls")
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _shift(old: float | None, new: float | None) -> str:
    if old == new:
        return _number(old)
    return f"{_number(old)} → {_number(new)}"
