"""``mlzen runs config`` and ``mlzen runs env``: what it takes to rerun a run.

A run records its resolved configuration (the spec: pipeline parameters and, per step,
parameters, caching, retries and settings), its code version (git commit, dirty flag
and diff) and its Python environment. ``config`` turns the first back into a YAML run
configuration; ``env`` prints the other two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import print_json

if TYPE_CHECKING:
    from mlzen.client import PipelineRun


def run_config(run: PipelineRun) -> dict[str, Any]:
    """A run's resolved configuration as a run configuration mapping.

    The shape ``RunConfig.from_dict`` reads, so that
    ``pipeline.with_options(config_path=...)()`` reruns with the same parameters,
    caching, retries and settings (and, for unchanged code, is a full cache hit).
    """
    spec = run.spec_data
    config: dict[str, Any] = {
        "parameters": spec.get("parameters", {}),
        "enable_cache": spec.get("enable_cache", True),
        "settings": spec.get("settings", {}),
        "steps": {
            step["id"]: {
                "parameters": step.get("parameters", {}),
                "enable_cache": step.get("enable_cache", True),
                "retries": step.get("retries", 0),
                "settings": step.get("settings", {}),
            }
            for step in spec.get("steps", [])
        },
    }
    # The model a run's outputs were linked to: the run's, and any step's own.
    if spec.get("model"):
        config["model"] = spec["model"]
    for step in spec.get("steps", []):
        if step.get("model") and step["model"] != spec.get("model"):
            config["steps"][step["id"]]["model"] = step["model"]
    return config


@click.command(
    "config",
    epilog="Example: mlzen runs config latest > run.yaml\n\n"
    "Then rerun it: mlzen run pipeline.py:training --config run.yaml",
)
@click.argument("run_ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the same mapping as JSON, not YAML.")
def config(run_ref: str, as_json: bool) -> None:
    """Print RUN's resolved configuration as a YAML run config that reruns it."""
    from mlzen.client import Client

    run = Client().get_pipeline_run(run_ref)
    mapping = run_config(run)
    if as_json:
        print_json(mapping)
        return
    import yaml

    code = run.code_version
    commit = code.get("git_commit")
    state = "not in a git repository"
    if commit:
        state = f"git {commit[:12]}" + (
            f" (dirty: see `mlzen runs env {run.name} --diff`)" if code.get("dirty") else ""
        )
    header = (
        f"# Run configuration of run '{run.name}' (pipeline '{run.pipeline_name}'), "
        "written by `mlzen runs config`.\n"
        f"# Code: {state}.\n"
        f"# Rerun: mlzen run <file.py>:{run.pipeline_name} --config <this file>\n"
        f"#    or: {run.pipeline_name}.with_options(config_path=<this file>)()\n"
    )
    body = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, default_flow_style=False)
    click.echo(header + body, nl=False)


def environment_of(run: PipelineRun) -> dict[str, Any]:
    """The stable ``--json`` shape of ``mlzen runs env``."""
    code, environment = run.code_version, run.environment
    return {
        "run": run.name,
        "run_id": run.id,
        "python": environment.get("python"),
        "implementation": environment.get("implementation"),
        "platform": environment.get("platform"),
        "packages": environment.get("packages", []),
        "git_commit": code.get("git_commit"),
        "dirty": code.get("dirty"),
        "diff": code.get("diff"),
        "diff_truncated": bool(code.get("diff_truncated")),
        "source_hash": code.get("source_hash"),
    }


@click.command("env", epilog="Example: mlzen runs env latest --diff > uncommitted.patch")
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Print only the uncommitted changes (git diff HEAD) recorded with RUN.",
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (stable keys).")
def env(run_ref: str, show_diff: bool, as_json: bool) -> None:
    """Print the environment RUN recorded: Python, platform, packages and git state."""
    from mlzen.client import Client

    run = Client().get_pipeline_run(run_ref)
    recorded = environment_of(run)
    if as_json:
        print_json(recorded)
        return
    commit = recorded["git_commit"]
    if show_diff:
        if recorded["diff"]:
            click.echo(recorded["diff"], nl=False)
        elif commit:
            click.echo(
                f"Run {run.name} recorded no diff: the tree was clean at {commit}.", err=True
            )
        else:
            click.echo(
                f"Run {run.name} recorded no diff: its project is not in a git repository.",
                err=True,
            )
        return
    if not commit:
        git = "not a git repository"
    elif recorded["dirty"]:
        lines = (recorded["diff"] or "").splitlines()
        files = sum(1 for line in lines if line.startswith("diff --git "))
        git = (
            f"{commit} (dirty: {files} file{'s' if files != 1 else ''} changed; "
            f"print the diff with `mlzen runs env {run.name} --diff`)"
        )
    else:
        git = f"{commit} (clean)"
    rows = [
        ("run", f"{run.name} ({run.id})"),
        ("python", f"{recorded['python']} ({recorded['implementation']})"),
        ("platform", recorded["platform"]),
        ("git", git),
        ("source hash", recorded["source_hash"]),
        ("packages", str(len(recorded["packages"]))),
    ]
    for label, value in rows:
        click.echo(f"{label:<12} {value}")
    for package in recorded["packages"]:
        click.echo(f"  {package}")
