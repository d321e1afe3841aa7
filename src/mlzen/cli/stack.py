"""``mlzen stack``: register, list, describe, activate and delete stacks."""

from __future__ import annotations

import click

from mlzen.cli.output import json_option, print_json, print_table, when


@click.group(epilog="Example: mlzen stack register cluster -o ray -a s3 -m pg")
def stack() -> None:
    """Register, list, describe, activate and delete stacks.

    The active stack is MLZEN_STACK if set, else the one 'mlzen stack set' chose, else
    'local' (always there, needs nothing).
    """


@stack.command("register", epilog="Example: mlzen stack register cluster -o ray -a s3 -m pg")
@click.argument("name")
@click.option("-o", "--orchestrator", required=True, help="Orchestrator component ('local' ok).")
@click.option(
    "-a", "--artifact-store", required=True, help="Artifact store component ('local' ok)."
)
@click.option("-m", "--metadata-store", help="Metadata store component [default: local].")
@click.option("-d", "--model-deployer", help="Model deployer component [default: local].")
@click.option("-e", "--experiment-tracker", help="Experiment tracker component [default: none].")
@click.option("--replace", is_flag=True, help="Overwrite a stack of this name.")
@click.option("--set", "activate", is_flag=True, help="Make it the active stack.")
def register(
    name: str,
    orchestrator: str,
    artifact_store: str,
    metadata_store: str | None,
    model_deployer: str | None,
    experiment_tracker: str | None,
    replace: bool,
    activate: bool,
) -> None:
    """Register a stack of registered components.

    'local' names the built-in component of a kind; -m and -d default to it.
    """
    from mlzen.errors import ConfigError
    from mlzen.stack_registry import register_stack, set_active_stack

    try:
        register_stack(
            name,
            {
                "orchestrator": orchestrator,
                "artifact_store": artifact_store,
                "metadata_store": metadata_store,
                "model_deployer": model_deployer,
                "experiment_tracker": experiment_tracker,
            },
            replace=replace,
        )
    except ConfigError as exc:
        if not exc.fields.get("already_registered"):
            raise
        raise ConfigError(
            f"A stack named '{name}' is already registered. Pick another name, or add "
            "--replace to overwrite it.",
            **exc.fields,
        ) from None
    click.echo(f"Registered stack '{name}'.")
    if activate:
        set_active_stack(name)
        click.echo(f"Active stack: {name}.")


@stack.command("list", epilog="Example: mlzen stack list --json")
@json_option
def list_stacks(as_json: bool) -> None:
    """List stacks; * marks the active one.

    'local' is always there.
    """
    from mlzen.stack_registry import list_stacks as listed

    found = listed()
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        [
            "",
            "name",
            "orchestrator",
            "artifact_store",
            "metadata_store",
            "model_deployer",
            "created",
        ],
        [
            (
                "*" if s["active"] else "",
                s["name"],
                s["components"]["orchestrator"],
                s["components"]["artifact_store"],
                s["components"]["metadata_store"],
                s["components"]["model_deployer"],
                when(s["created_at"]) if s["created_at"] else "built-in",
            )
            for s in found
        ],
    )


@stack.command("describe", epilog="Example: mlzen stack describe cluster")
@click.argument("name", required=False)
@json_option
def describe(name: str | None, as_json: bool) -> None:
    """Show a stack's components, flavors and configs.

    NAME defaults to the active stack. Passwords are hidden.
    """
    from mlzen.cli.component import config_text
    from mlzen.stack_registry import describe_stack

    found = describe_stack(name)
    if as_json:
        print_json(found)
        return
    click.echo(f"Stack '{found['name']}'" + (" (active)" if found["active"] else ""))
    print_table(
        None,
        ["kind", "component", "flavor", "config"],
        [
            (kind, c["name"], c["flavor"], config_text(c["config"]))
            for kind, c in found["components"].items()
        ],
    )


@stack.command("set", epilog="Example: mlzen stack set cluster")
@click.argument("name")
def set_stack(name: str) -> None:
    """Make NAME the active stack.

    Its components are built first, so a broken config or missing secret shows now.
    """
    from mlzen.config import load_settings
    from mlzen.stack import load_stack
    from mlzen.stack_registry import set_active_stack

    settings = load_settings()
    load_stack(name, settings)
    set_active_stack(name, settings=settings)
    click.echo(f"Active stack: {name}.")
    if settings.stack and settings.stack != name:
        click.echo(
            f"Note: MLZEN_STACK (or 'stack' in .mlzen/config.yaml) selects '{settings.stack}' "
            "and wins; unset it to use this one.",
            err=True,
        )


@stack.command("delete", epilog="Example: mlzen stack delete cluster")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete it even if active ('local' becomes active).")
def delete(name: str, force: bool) -> None:
    """Delete a stack (not 'local'); its components stay registered."""
    from mlzen.stack_registry import delete_stack

    was_active = delete_stack(name, force=force)
    click.echo(f"Deleted stack '{name}'." + (" Active stack: local." if was_active else ""))
