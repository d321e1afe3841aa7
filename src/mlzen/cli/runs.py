"""``mlzen runs``: list, show, logs, resume, delete, explain, config and env of runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.main import LazyGroup
from mlzen.cli.output import console as output_console
from mlzen.cli.output import json_option, print_json, print_table, seconds, styled, when

if TYPE_CHECKING:
    from mlzen.client import PipelineRun, StepRun

SUBCOMMANDS = {
    "explain": "mlzen.cli.explain:explain",
    "config": "mlzen.cli.reproduce:config",
    "env": "mlzen.cli.reproduce:env",
}
STATUS_STYLES = {
    "completed": "green",
    "cached": "cyan",
    "running": "yellow",
    "failed": "red",
    "crashed": "red",
    "stopped": "magenta",
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS, epilog="Example: mlzen runs list --limit 5")
def runs() -> None:
    """Inspect and manage pipeline runs. RUN is an id, unique id prefix, name or 'latest'."""


def run_summary(run: PipelineRun) -> dict[str, Any]:
    """The stable ``--json`` shape of a run."""
    return {
        "id": run.id,
        "name": run.name,
        "pipeline": run.pipeline_name,
        "status": run.status,
        "created_at": run.created_at,
        "ended_at": run.ended_at,
        "duration_s": run.duration,
        "parameters": run.parameters,
        "stack": run.stack,
        "resumed_from": run.resumed_from_id,
    }


def step_summary(step: StepRun) -> dict[str, Any]:
    """The stable ``--json`` shape of a step run."""
    return {
        "id": step.id,
        "step": step.name,
        "step_name": step.step_name,
        "status": step.status,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_s": step.duration,
        "attempts": step.attempts,
        "parameters": step.parameters,
        "cached_from": step.cached_from_id,
        "inputs": {n: f"{v.name}:{v.version}" for n, v in step.inputs.items()},
        "outputs": {n: f"{v.name}:{v.version}" for n, v in step.outputs.items()},
        "error": step.error,
        "hook_error": step.hook_error,
    }


@runs.command("list", epilog="Example: mlzen runs list --pipeline training --status failed")
@click.option("--pipeline", "pipeline_name", help="Only runs of this pipeline.")
@click.option("--status", help="Only runs in this status (completed, failed, running, ...).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many.")
@json_option
def list_runs(pipeline_name: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    from mlzen.client import Client

    found = Client().list_pipeline_runs(pipeline=pipeline_name, status=status, limit=limit)
    if as_json:
        print_json([run_summary(run) for run in found])
        return
    print_table(
        None,
        ["id", "name", "pipeline", "status", "created", "duration"],
        [
            (r.id[:8], r.name, r.pipeline_name, r.status, when(r.created_at), seconds(r.duration))
            for r in found
        ],
    )


@runs.command("show", epilog="Example: mlzen runs show latest")
@click.argument("run_ref", metavar="RUN")
@json_option
def show(run_ref: str, as_json: bool) -> None:
    """Show a run: its steps as a tree with status and duration, parameters, outputs."""
    from rich.markup import escape
    from rich.tree import Tree

    from mlzen.client import Client

    run = Client().get_pipeline_run(run_ref)
    steps = run.steps
    if as_json:
        print_json({**run_summary(run), "steps": [step_summary(s) for s in steps.values()]})
        return
    spec = run.spec
    console = output_console()
    console.print(
        f"[bold]{escape(run.name)}[/]  {styled(run.status, STATUS_STYLES)}  id {run.id}  "
        f"pipeline {escape(run.pipeline_name)}  {when(run.created_at)}  {seconds(run.duration)}"
    )
    if run.parameters:
        from mlzen.parameters import shorten

        # Cut long values: the terminal is for reading (--json has them whole).
        shown = (f"{k}={shorten(repr(v), 200)}" for k, v in run.parameters.items())
        console.print("parameters: " + escape(", ".join(shown)))
    code = run.code_version
    if code.get("git_commit"):
        console.print(
            f"code: git {code['git_commit'][:12]}{' (dirty)' if code.get('dirty') else ''}"
        )
    linked = run.model_versions
    if linked:
        console.print(
            "models: " + ", ".join(f"{escape(v.name)}:{v.number} ({v.stage})" for v in linked)
        )
    tree = Tree(f"[bold]{escape(run.pipeline_name)}[/]")
    children = spec.downstream()
    placed: dict[str, Any] = {}

    def label(step_id: str) -> str:
        step = steps.get(step_id)
        if step is None:
            return f"{escape(step_id)}  [dim]not run[/]"
        outputs = ", ".join(
            f"{escape(name)} → {escape(v.name)}:{v.version}" for name, v in step.outputs.items()
        )
        extra = f"  [dim]{outputs}[/]" if outputs else ""
        status = styled(step.status, STATUS_STYLES)
        hook = "  [red]hook failed[/]" if step.hook_error else ""
        return f"{escape(step_id)}  {status}{hook}  {seconds(step.duration)}{extra}"

    def place(step_id: str, parent: Any) -> None:
        if step_id in placed:
            parent.add(f"[dim]↳ {escape(step_id)} (shown above)[/]")
            return
        node = parent.add(label(step_id))
        placed[step_id] = node
        for child in sorted(children[step_id]):
            place(child, node)

    for step_id in spec.topological_order():
        if not spec.steps[step_id].upstream:
            place(step_id, tree)
    console.print(tree)
    if run.error and run.status != "completed":
        console.print(f"[red]error:[/] {escape(run.error.strip().splitlines()[-1])}")
    for step_id, step in steps.items():
        if step.hook_error:
            lines = step.hook_error.strip().splitlines()
            console.print(
                f"[red]hook error[/] in {escape(step_id)}: {escape(lines[0].removesuffix(':'))}: "
                f"{escape(lines[-1])}  [dim](mlzen runs logs {run.id[:8]} {escape(step_id)})[/]"
            )


@runs.command("logs", epilog="Example: mlzen runs logs latest train")
@click.argument("run_ref", metavar="RUN")
@click.argument("step_id", metavar="[STEP]", required=False)
def logs(run_ref: str, step_id: str | None) -> None:
    """Print the captured stdout, stderr and logging of a run's steps (or of one STEP)."""
    from mlzen.client import Client
    from mlzen.errors import NotFoundError

    run = Client().get_pipeline_run(run_ref)
    steps = run.steps
    if step_id is not None and step_id not in steps:
        raise NotFoundError(
            f"Run '{run.name}' has no step '{step_id}'. Its steps: {', '.join(steps) or 'none'}.",
            step_name=step_id,
        )
    for name, step in steps.items():
        if step_id is not None and name != step_id:
            continue
        if step_id is None:
            click.echo(f"===== {name} ({step.status}) =====")
        click.echo(step.logs, nl=False)
        if step.error and step.status != "completed":
            click.echo(step.error, nl=False)
        if step.hook_error and step.hook_error not in step.logs:  # a failure hook's is there
            click.echo(step.hook_error, nl=False)


@runs.command("resume", epilog="Example: mlzen runs resume latest")
@click.argument("run_ref", metavar="RUN")
def resume(run_ref: str) -> None:
    """Rerun what did not succeed in RUN, reusing every step that did."""
    import os

    from mlzen.client import Client

    sys.path.insert(0, os.getcwd())  # the steps are imported by their module names
    run = Client().get_pipeline_run(run_ref)
    resumed = run.resume()
    click.echo(f"Resumed {run.name} as {resumed.name}: {resumed.status}")


@runs.command("delete", epilog="Example: mlzen runs delete latest --yes")
@click.argument("run_ref", metavar="RUN")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(run_ref: str, yes: bool) -> None:
    """Delete a run and the artifact versions only it used (files go with `mlzen gc`)."""
    from mlzen.client import Client

    client = Client()
    run = client.get_pipeline_run(run_ref)
    if not yes:
        click.confirm(f"Delete run {run.name} ({run.status}, {len(run.steps)} steps)?", abort=True)
    removed = client.store.delete_run(run.id)
    click.echo(f"Deleted run {run.name} and {removed} artifact versions only it used.")
