"""``mlzen component``: register, list, describe and delete stack components."""

from __future__ import annotations

import json
import types
import typing
from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import json_option, print_json, print_table, when
from mlzen.errors import ConfigError
from mlzen.flavors import KINDS

if TYPE_CHECKING:
    from mlzen.flavors import Flavor

kind_argument = click.argument("kind", type=click.Choice(KINDS), metavar="KIND")


@click.group(epilog="Example: mlzen component list orchestrator")
def component() -> None:
    """Register, list, describe and delete stack components.

    KIND is orchestrator, artifact_store, metadata_store, model_deployer or
    experiment_tracker; each kind but experiment_tracker also has a built-in component
    named 'local', configured by settings.
    """


def config_text(config: dict[str, Any]) -> str:
    """``key=value, ...`` with strings bare and everything else as JSON."""
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in config.items())


def _takes_text(flavor: type[Flavor], key: str) -> bool:
    """Whether the option is a string, so '123' or 'true' must stay text."""
    field = flavor.config_class.model_fields.get(key)
    if field is None:
        return False
    annotation = field.annotation
    options = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    names = {getattr(option, "__name__", "") for option in options}
    return bool(names) and names <= {"str", "SecretStr", "NoneType"}


def parse_config(flavor: type[Flavor], args: list[str]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` pairs into a config; values are JSON when they
    parse as JSON (and the option is not a string), else strings."""
    known = set(flavor.option_names())
    config: dict[str, Any] = {}
    remaining = list(args)
    while remaining:
        arg = remaining.pop(0)
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(
                f"Unexpected argument '{arg}'. Give the component's config as --key value "
                "pairs after KIND and NAME.",
                argument=arg,
            )
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if not remaining:
                raise ConfigError(
                    f"Option '--{key}' needs a value: --{key} VALUE.",
                    option=key,
                )
            value = remaining.pop(0)
        if key not in known:
            key = key.replace("-", "_")
        if key in config:
            raise ConfigError(f"Option '--{key}' is given twice.", option=key)
        if _takes_text(flavor, key):
            config[key] = value
            continue
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


@component.command(
    "register",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="Example: mlzen component register artifact_store shared --flavor local "
    "--path /mnt/team/artifacts",
)
@kind_argument
@click.argument("name")
@click.option("--flavor", "-f", "flavor_name", required=True, help="The flavor, e.g. local.")
@click.option("--replace", is_flag=True, help="Overwrite a component of this kind and name.")
@click.pass_context
def register(ctx: click.Context, kind: str, name: str, flavor_name: str, replace: bool) -> None:
    """Register a component, its config checked now.

    The config follows as --key value pairs; values are JSON where they parse
    (--max_workers 4), else text. Reference secrets as '{{ secrets.NAME.key }}'.
    """
    from mlzen import plugins
    from mlzen.stack_registry import register_component

    flavor = plugins.flavor(kind, flavor_name)
    config = parse_config(flavor, ctx.args)
    try:
        register_component(kind, name, flavor_name, config, replace=replace)
    except ConfigError as exc:
        if not exc.fields.get("already_registered"):
            raise
        raise ConfigError(
            f"A {kind} component named '{name}' is already registered. Pick another name, or "
            "add --replace to overwrite it.",
            **exc.fields,
        ) from None
    click.echo(f"Registered {kind} '{name}' (flavor {flavor_name}).")


@component.command("list", epilog="Example: mlzen component list artifact_store --json")
@click.argument("kind", type=click.Choice(KINDS), required=False, metavar="[KIND]")
@json_option
def list_components(kind: str | None, as_json: bool) -> None:
    """List components, their configs and stacks.

    Only those of KIND, if given.
    """
    from mlzen.stack_registry import list_components as listed

    found = listed(kind)
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["kind", "name", "flavor", "config", "stacks"],
        [
            (
                c["kind"],
                c["name"] + (" (built-in)" if c["builtin"] else ""),
                c["flavor"],
                config_text(c["config"]),
                ", ".join(c["stacks"]) or "-",
            )
            for c in found
        ],
    )


@component.command("describe", epilog="Example: mlzen component describe orchestrator ray")
@kind_argument
@click.argument("name")
@json_option
def describe(kind: str, name: str, as_json: bool) -> None:
    """Show a component's flavor, config and stacks.

    Passwords are hidden; secret references are shown as written.
    """
    from mlzen.stack_registry import describe_component

    found = describe_component(kind, name)
    if as_json:
        print_json(found)
        return
    rows: list[tuple[str, Any]] = [
        ("kind", kind),
        ("name", name + (" (built-in, from settings)" if found["builtin"] else "")),
        ("flavor", found["flavor"]),
        ("created", when(found["created_at"]) if found["created_at"] else "-"),
        ("stacks", ", ".join(found["stacks"]) or "-"),
    ]
    rows += [
        (f"  {key}", value if isinstance(value, str) else json.dumps(value))
        for key, value in found["config"].items()
    ]
    print_table(None, ["", ""], rows)


@component.command("delete", epilog="Example: mlzen component delete artifact_store shared")
@kind_argument
@click.argument("name")
def delete(kind: str, name: str) -> None:
    """Delete a component; refused while a stack uses it."""
    from mlzen.stack_registry import delete_component

    delete_component(kind, name)
    click.echo(f"Deleted {kind} '{name}'.")
