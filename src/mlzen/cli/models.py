"""``mlzen models``: list models and their versions, show a version, promote it.

A version is named ``NAME:VERSION``, where VERSION is a number, ``latest`` or a stage
(``staging``, ``production``, ``archived``); ``NAME`` alone means ``NAME:latest``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import console as output_console
from mlzen.cli.output import json_option, print_json, print_table, styled, when

if TYPE_CHECKING:
    from mlzen.client import Client
    from mlzen.model_versions import ModelVersion, RegisteredModel

STAGE_STYLES = {"production": "green", "staging": "yellow", "archived": "dim", "none": "white"}


@click.group(epilog="Example: mlzen models show churn:production")
def models() -> None:
    """Models and their versions: what each run produced, and which is in production."""


def _version(client: Client, ref: str) -> ModelVersion:
    name, _, version = ref.partition(":")
    return client.get_model_version(name, version or "latest")


def model_summary(model: RegisteredModel) -> dict[str, Any]:
    """The stable ``--json`` shape of a model."""
    return {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "created_at": model.created_at,
        "version_count": model.version_count,
        "latest_version": model.latest_version,
        "staging_version": model.staging_version,
        "production_version": model.production_version,
    }


def version_summary(version: ModelVersion) -> dict[str, Any]:
    """The stable ``--json`` shape of a model version (its artifacts by output name)."""
    return {
        "id": version.id,
        "model": version.name,
        "version": version.number,
        "stage": version.stage,
        "description": version.description,
        "run_id": version.run_id,
        "created_at": version.created_at,
        "updated_at": version.updated_at,
        "artifacts": {link["name"]: link["artifact_version_id"] for link in version.artifact_links},
    }


@models.command("list", epilog="Example: mlzen models list --json")
@json_option
def list_models(as_json: bool) -> None:
    """List models with their version count and the versions in staging and production."""
    from mlzen.client import Client

    found = Client().list_models()
    if as_json:
        print_json([model_summary(model) for model in found])
        return
    print_table(
        None,
        ["name", "versions", "latest", "staging", "production", "created"],
        [
            (
                m.name,
                m.version_count,
                m.latest_version or "-",
                m.staging_version or "-",
                m.production_version or "-",
                when(m.created_at),
            )
            for m in found
        ],
    )


@models.command("versions", epilog="Example: mlzen models versions churn")
@click.argument("name")
@json_option
def versions(name: str, as_json: bool) -> None:
    """List the versions of model NAME, newest first."""
    from mlzen.client import Client

    client = Client()
    found = client.list_model_versions(name)
    if as_json:
        print_json([version_summary(version) for version in found])
        return
    runs = _run_names(client, {v.run_id for v in found if v.run_id})
    print_table(
        None,
        ["version", "stage", "run", "artifacts", "created", "updated"],
        [
            (
                v.number,
                styled(v.stage, STAGE_STYLES),
                runs.get(v.run_id or "", "-"),
                len(v.artifact_links),
                when(v.created_at),
                when(v.updated_at),
            )
            for v in found
        ],
    )


def _run_names(client: Client, run_ids: set[str]) -> dict[str, str]:
    from mlzen.errors import NotFoundError

    names: dict[str, str] = {}
    for run_id in run_ids:
        try:
            names[run_id] = client.get_pipeline_run(run_id).name
        except NotFoundError:  # deleted meanwhile
            continue
    return names


@models.command("show", epilog="Example: mlzen models show churn:production")
@click.argument("ref", metavar="NAME:VERSION")
@json_option
def show(ref: str, as_json: bool) -> None:
    """Show a model version: its stage, the run that made it, its artifacts and metadata.

    VERSION is a number, 'latest' or a stage; NAME alone means NAME:latest.
    """
    from rich.markup import escape

    from mlzen.cli.output import human_size
    from mlzen.client import Client

    client = Client()
    version = _version(client, ref)
    artifacts = version.artifacts
    metadata = version.metadata
    if as_json:
        print_json({**version_summary(version), "metadata": metadata})
        return
    run = version.run
    console = output_console()
    console.print(
        f"[bold]{escape(version.name)}:{version.number}[/]  {styled(version.stage, STAGE_STYLES)}  "
        f"id {version.id}  created {when(version.created_at)}  "
        f"stage since {when(version.updated_at)}"
    )
    if version.description:
        console.print(f"description: {escape(version.description)}")
    console.print(
        f"run: {escape(run.name)} ({run.status})" if run is not None else "run: - (deleted)"
    )
    if artifacts:
        print_table(
            "artifacts",
            ["name", "artifact version", "type", "size"],
            [
                (name, f"{a.name}:{a.version}", a.data_type, human_size(a.size))
                for name, a in sorted(artifacts.items())
            ],
        )
    else:
        console.print("artifacts: none linked")
    if metadata:
        print_table("metadata", ["key", "value"], sorted(metadata.items()))


@models.command(
    "promote",
    epilog="Example: mlzen models promote churn:3 production --force",
)
@click.argument("ref", metavar="NAME:VERSION")
@click.argument("stage", type=click.Choice(["staging", "production", "archived", "none"]))
@click.option(
    "--force",
    is_flag=True,
    help="Take the stage from the version holding it (which is archived).",
)
@json_option
def promote(ref: str, stage: str, force: bool, as_json: bool) -> None:
    """Move a model version to STAGE.

    Staging and production are held by one version at a time: taking one from another
    version needs --force and archives that version.
    """
    from mlzen.client import Client
    from mlzen.store.models import promote as promote_version

    client = Client()
    version = _version(client, ref)
    result = promote_version(client.store, version.id, stage, force=force)
    version = client.get_model_version(version.id)
    archived = result["archived"]
    if as_json:
        print_json(
            {
                **version_summary(version),
                "archived_version": archived["version"] if archived is not None else None,
            }
        )
        return
    click.echo(f"{version.name}:{version.number} is now in {stage}.")
    if archived is not None:
        click.echo(f"{version.name}:{archived['version']} was in {stage} and is now archived.")
