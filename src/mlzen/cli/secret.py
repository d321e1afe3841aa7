"""``mlzen secret``: set, list and delete secrets (stored encrypted; values never shown)."""

from __future__ import annotations

import click

from mlzen.cli.output import json_option, print_json, print_table, when
from mlzen.errors import ConfigError


@click.group(epilog="Example: mlzen secret set pg password")
def secret() -> None:
    """Set, list and delete encrypted secrets.

    A component config references a value as '{{ secrets.NAME.key }}'. Values are
    encrypted with MLZEN_SECRETS_KEY, or the key file .mlzen/secrets.key (made on first use).
    """


@secret.command(
    "set",
    epilog="Example: mlzen secret set aws access_key_id=AKIA... secret_access_key",
)
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY[=VALUE]...")
def set_secret(name: str, pairs: tuple[str, ...]) -> None:
    """Store secret NAME, replacing its earlier values.

    A KEY without =VALUE is asked for (hidden), which keeps it out of shell history.
    """
    from mlzen.secrets import set_secret as store_secret

    values: dict[str, str] = {}
    for pair in pairs:
        key, has_value, value = pair.partition("=")
        if key in values:
            raise ConfigError(f"Key '{key}' of secret '{name}' is given twice.", key=key)
        if not has_value:
            value = click.prompt(f"{name}.{key}", hide_input=True, err=True)
        values[key] = value
    created = store_secret(name, values)
    click.echo(f"{'Created' if created else 'Updated'} secret '{name}' ({', '.join(values)}).")


@secret.command("list", epilog="Example: mlzen secret list --json")
@json_option
def list_secrets(as_json: bool) -> None:
    """List secrets: names and keys, never values."""
    from mlzen.secrets import list_secrets as listed

    found = listed()
    if as_json:
        print_json(found)
        return
    print_table(
        None,
        ["name", "keys", "created", "updated"],
        [
            (s["name"], ", ".join(s["keys"]), when(s["created_at"]), when(s["updated_at"]))
            for s in found
        ],
    )


@secret.command("delete", epilog="Example: mlzen secret delete aws")
@click.argument("name")
def delete(name: str) -> None:
    """Delete a secret no component references."""
    from mlzen.secrets import delete_secret

    delete_secret(name)
    click.echo(f"Deleted secret '{name}'.")
