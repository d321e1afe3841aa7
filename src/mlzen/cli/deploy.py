"""``mlzen deploy`` and ``mlzen deployments``: serve model versions over HTTP."""

from __future__ import annotations

import json

import click

from mlzen.cli.output import json_option, print_json, print_table, when


@click.command(
    epilog="Example: mlzen deploy churn:production --port 8000",
)
@click.argument("model", metavar="MODEL[:VERSION]")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: a free one].")
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--name", help="Deployment name [default: MODEL-VERSION, e.g. churn-production].")
@click.option(
    "--artifact",
    default="model",
    show_default=True,
    help="Which artifact of the model version to serve.",
)
@json_option
def deploy(
    model: str, port: int | None, host: str | None, name: str | None, artifact: str, as_json: bool
) -> None:
    """Serve a model version as an HTTP prediction service in the background.

    VERSION is a number, 'latest' (the default), 'staging' or 'production'. The service
    keeps running after this command exits; deploying a NAME again replaces it.
    Routes: POST /predict, GET /health, GET /info.
    """
    from mlzen.deployers.deployments import deploy as start
    from mlzen.deployers.deployments import service_info

    click.echo(f"Deploying {model} ...", err=True)
    deployment = start(model, name=name, host=host, port=port, artifact=artifact)
    if as_json:
        print_json(deployment.to_dict())
        return
    url = deployment.url
    info = service_info(deployment)
    click.echo(f"Deployed {deployment.served.describe()} as '{deployment.name}' at {url}")
    if info.get("input", {}).get("named"):
        columns = info["input"]["columns"]
        click.echo(f"  input:   {', '.join(c['name'] for c in columns)}")
        row: object = {c["name"]: _placeholder(c["kind"]) for c in columns}
    else:
        click.echo(f"  input:   {info.get('input', {}).get('source', 'see /info')}")
        row = [_placeholder(c["kind"]) for c in info.get("input", {}).get("columns", [])]
    body = json.dumps({"rows": [row]})
    click.echo(f"  predict: curl -s {url}/predict -H 'content-type: application/json' -d '{body}'")
    click.echo(f"  info:    curl -s {url}/info")
    click.echo(f"  logs:    mlzen deployments logs {deployment.name}")
    click.echo(f"  stop:    mlzen deployments stop {deployment.name}")


@click.group(epilog="Example: mlzen deployments list")
def deployments() -> None:
    """List, inspect and stop model deployments ('mlzen deploy' starts them)."""


@deployments.command("list", epilog="Example: mlzen deployments list --json")
@json_option
def list_deployments(as_json: bool) -> None:
    """List deployments, each status checked now.

    A service whose process is gone or whose /health fails shows as crashed.
    """
    from mlzen.deployers.deployments import list_deployments as listed

    found = listed()
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    if not found:
        click.echo("No deployments. Start one with 'mlzen deploy MODEL:VERSION'.")
        return
    print_table(
        None,
        ["name", "status", "model", "version", "stage", "artifact", "url", "pid", "updated"],
        [
            (
                d.name,
                d.status,
                d.served.model_name or "-",
                d.served.model_version or "-",
                d.served.stage or "-",
                d.served.artifact_name,
                d.url or "-",
                d.pid or "-",
                when(d.updated_at),
            )
            for d in found
        ],
    )


@deployments.command("logs", epilog="Example: mlzen deployments logs churn-production --tail 20")
@click.argument("name")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines.")
def logs(name: str, tail: int | None) -> None:
    """Print a deployment's service output (uvicorn's log, errors, tracebacks)."""
    from mlzen.deployers.deployments import deployment_logs

    click.echo(deployment_logs(name, tail=tail), nl=False)


@deployments.command("stop", epilog="Example: mlzen deployments stop churn-production")
@click.argument("name")
def stop(name: str) -> None:
    """Stop a deployment's service and wait until its port is free."""
    from mlzen.deployers.deployments import stop_deployment

    deployment = stop_deployment(name)
    where = f" (port {deployment.config['port']} is free)" if deployment.config.get("port") else ""
    click.echo(f"Stopped deployment '{name}'{where}.")


def _placeholder(kind: str) -> object:
    return {"integer": 0, "number": 0.0, "boolean": False, "string": "..."}.get(kind, "...")
