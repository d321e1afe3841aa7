"""``mlzen artifacts``: list, show and export artifact versions.

``NAME[:VERSION]`` names a version: ``raw`` (the latest), ``raw:3``, ``raw:latest``, or
an artifact version id.

``--json`` keys (stable):

- ``list``: ``name``, ``latest_version``, ``version_count``, ``total_size`` (bytes,
  summed over versions), ``created_at``, ``updated_at`` (newest version).
- ``list NAME``: one object per version, newest first: ``id``, ``name``, ``version``,
  ``data_type``, ``materializer``, ``size``, ``content_hash``, ``uri``, ``created_at``,
  ``producer`` (``run_id``, ``run_name``, ``step_id``, ``step_run_id``, or ``null``).
- ``show``: the keys of ``list NAME`` plus ``metadata`` (extracted when saved, with
  logged values on top) and ``consumers`` (``run_id``, ``run_name``, ``step_id``,
  ``step_run_id``, ``input_name`` per reading step run).

Timestamps are ISO 8601 UTC. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlzen.cli.output import human_size, json_option, print_json, print_table, when

if TYPE_CHECKING:
    from mlzen.client import ArtifactVersion, Client

HASH_PREFIX = 12


@click.group(epilog="Example: mlzen artifacts show raw:2")
def artifacts() -> None:
    """List, show and export artifacts.

    NAME[:VERSION] is 'raw' (the latest version), 'raw:3', 'raw:latest' or a version id.
    """


@artifacts.command(
    "list",
    epilog="Example: mlzen artifacts list raw --limit 5",
)
@click.argument("name", required=False)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows to show."
)
@json_option
def list_artifacts(name: str | None, limit: int, as_json: bool) -> None:
    """List artifacts, or the versions of artifact NAME.

    Without NAME: every artifact with its latest version, version count and total size.
    With NAME: its versions newest first, with type, size, hash prefix, creation time and
    the run and step that produced each.
    """
    from mlzen.client import Client
    from mlzen.store import queries

    client = Client()
    if name is None:
        rows = queries.artifact_summaries(client.store, limit=limit)
        if as_json:
            print_json([_summary(row) for row in rows])
            return
        if not rows:
            click.echo("No artifacts yet. Run a pipeline: mlzen run FILE.py:PIPELINE")
            return
        print_table(
            None,
            ["NAME", "LATEST", "VERSIONS", "TOTAL SIZE", "UPDATED"],
            [
                (
                    row["name"],
                    row["latest_version"] or "-",
                    row["version_count"],
                    human_size(row["total_size"]),
                    when(row["updated_at"]),
                )
                for row in rows
            ],
        )
        _note_limit(len(rows), limit)
        return
    _artifact(client, name)
    versions = client.list_artifact_versions(name, limit=limit)
    origins = queries.step_run_origins(
        client.store, [v.producer_step_run_id for v in versions if v.producer_step_run_id]
    )
    if as_json:
        print_json([_version(v, origins) for v in versions])
        return
    print_table(
        None,
        ["VERSION", "TYPE", "SIZE", "HASH", "CREATED", "PRODUCER (RUN / STEP)"],
        [
            (
                f"{v.name}:{v.version}",
                v.data_type,
                human_size(v.size),
                v.content_hash[:HASH_PREFIX],
                when(v.created_at),
                _producer_text(_producer(v, origins)),
            )
            for v in versions
        ],
    )
    _note_limit(len(versions), limit)


@artifacts.command(epilog="Example: mlzen artifacts show model:3 --json")
@click.argument("ref", metavar="NAME[:VERSION]")
@json_option
def show(ref: str, as_json: bool) -> None:
    """Show one artifact version, its metadata, lineage and visualizations.

    Type, materializer, size, content hash, uri, metadata (extracted when saved, plus
    anything logged), the producing run and step, the steps that read it, and its
    visualizations (name, kind, uri of each file).
    """
    from mlzen.client import Client
    from mlzen.store import queries

    client = Client()
    version = resolve(client, ref)
    producer_ids = [version.producer_step_run_id] if version.producer_step_run_id else []
    consumers = queries.consumers_of(client.store, version.id)
    origins = queries.step_run_origins(
        client.store, [*producer_ids, *(row["id"] for row in consumers)]
    )
    data = {
        **_version(version, origins),
        "metadata": version.metadata,
        "consumers": [
            {**_origin(origins.get(row["id"]), row["id"]), "input_name": row["input_name"]}
            for row in consumers
        ],
        "visualizations": [
            {"name": row["name"], "kind": row["kind"], "uri": row["uri"]}
            for row in queries.visualizations_of(client.store, version.id)
        ],
    }
    if as_json:
        print_json(data)
        return
    _print_version(data)


@artifacts.command(epilog="Example: mlzen artifacts export raw:3 raw.parquet")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.argument("path", type=click.Path())
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def export(ref: str, path: str, force: bool) -> None:
    """Export a version's file(s) to PATH as plain files other tools open.

    A one-file artifact becomes the file PATH (e.g. raw.parquet, array.npy, value.json),
    or goes into PATH if PATH is an existing folder; a multi-file artifact becomes the
    folder PATH. The files are checked against the recorded content hash, before and
    after copying. Existing files are never overwritten without --force.
    """
    from mlzen.client import Client

    client = Client()
    version = resolve(client, ref)
    folder = version.local_path()
    written = export_folder(folder, path, version.content_hash, force=force, label=ref)
    for file in written:
        click.echo(str(file))
    click.echo(
        f"Exported {version.name}:{version.version} ({version.data_type}, "
        f"{human_size(version.size)}, hash verified) to {len(written)} file(s).",
        err=True,
    )


# -- resolving NAME[:VERSION] -----------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"raw:3"`` → ``("raw", 3)``; ``"raw"`` and ``"raw:latest"`` → ``("raw", None)``."""
    from mlzen.errors import ConfigError

    name, colon, version = ref.rpartition(":")
    if not colon:
        return ref, None
    if name and version == "latest":
        return name, None
    if name and version.isascii() and version.isdigit():
        return name, int(version)
    raise ConfigError(
        f"'{ref}' is not NAME[:VERSION]: "
        + ("the name is empty" if not name else f"the version '{version}' is not a number")
        + ". Write e.g. 'raw', 'raw:3' or 'raw:latest'.",
        artifact_name=ref,
    )


def resolve(client: Client, ref: str) -> ArtifactVersion:
    """The artifact version ``ref`` (``NAME``, ``NAME:VERSION`` or a version id) names."""
    from mlzen.errors import ConfigError, NotFoundError

    try:
        name, number = parse_ref(ref)
    except ConfigError:
        try:  # a name may hold a colon
            return client.get_artifact_version(ref)
        except NotFoundError:
            pass
        raise
    try:
        return client.get_artifact_version(name, number)
    except NotFoundError:
        if number is None:
            raise NotFoundError(
                f"No artifact or artifact version id '{name}'. List artifacts with "
                "'mlzen artifacts list'.",
                artifact_name=name,
            ) from None
    latest = _artifact(client, name)["latest_version"]
    raise NotFoundError(
        f"Artifact '{name}' has no version {number} (its latest is {latest}). List its "
        f"versions with 'mlzen artifacts list {name}'.",
        artifact_name=name,
        version=number,
    )


def _artifact(client: Client, name: str) -> dict[str, Any]:
    """The artifact called ``name`` with its latest version number; NotFoundError if none."""
    from mlzen.errors import NotFoundError
    from mlzen.store import queries

    try:
        artifact = queries.get_artifact(client.store, name)
    except NotFoundError:
        raise NotFoundError(
            f"No artifact named '{name}'. List artifacts with 'mlzen artifacts list'.",
            artifact_name=name,
        ) from None
    found = client.list_artifact_versions(name, limit=1)
    return {**artifact, "latest_version": found[0].version if found else None}


# -- export -----------------------------------------------------------------------------


def export_folder(
    folder: Path, destination: str, content_hash: str, *, force: bool, label: str
) -> list[Path]:
    """Copy the artifact files in ``folder`` to ``destination``; returns the files written.

    ``destination`` is a folder if it is one already or ends with a slash. Each file is
    copied under a temporary name and renamed into place, so no file is left
    half-written; the copies are hashed and compared with ``content_hash``.
    """
    import os
    import shutil
    import uuid

    from mlzen.artifacts.hashing import combine, hash_file, list_files
    from mlzen.errors import ArtifactCorruptedError, ConfigError

    path = Path(destination)
    files = list_files(folder)
    if len(files) == 1:
        single = files[0]
        into = path.is_dir() or destination.endswith(("/", os.sep))
        target = path / Path(single.relpath).name if into else path
        plan = [(single, target)]
    else:
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"{path} is a file, but '{label}' holds {len(files)} files. Give a folder "
                "(new or existing) as PATH.",
                path=str(path),
            )
        plan = [(entry, path / entry.relpath) for entry in files]
    for _, target in plan:
        if target.is_dir():
            raise ConfigError(
                f"{target} is a folder, so '{label}' cannot be written there. Give another "
                "PATH, or the folder's parent to export into it.",
                path=str(target),
            )
        if (target.exists() or target.is_symlink()) and not force:
            raise ConfigError(
                f"{target} already exists. Pass --force to overwrite it, or give another PATH.",
                path=str(target),
            )
    written: list[Path] = []
    for entry, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            shutil.copyfile(entry.path, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        written.append(target)
    copied = combine(
        [(entry.relpath, entry.size, hash_file(target, entry.size)) for entry, target in plan]
    )
    if copied != content_hash:
        raise ArtifactCorruptedError(
            f"The exported copy of '{label}' hashes to {copied}, not {content_hash}: the "
            "files changed while they were copied. Export again.",
            expected_hash=content_hash,
            actual_hash=copied,
        )
    return written


# -- rendering --------------------------------------------------------------------------


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "latest_version": row["latest_version"],
        "version_count": row["version_count"],
        "total_size": row["total_size"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _origin(origin: dict[str, Any] | None, step_run_id: str) -> dict[str, Any]:
    origin = origin or {}
    return {
        "run_id": origin.get("run_id"),
        "run_name": origin.get("run_name"),
        "step_id": origin.get("step_id"),
        "step_run_id": step_run_id,
    }


def _producer(version: ArtifactVersion, origins: dict[str, Any]) -> dict[str, Any] | None:
    step_run_id = version.producer_step_run_id
    return None if step_run_id is None else _origin(origins.get(step_run_id), step_run_id)


def _version(version: ArtifactVersion, origins: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": version.id,
        "name": version.name,
        "version": version.version,
        "data_type": version.data_type,
        "materializer": version.materializer,
        "size": version.size,
        "content_hash": version.content_hash,
        "uri": version.uri,
        "created_at": version.created_at,
        "producer": _producer(version, origins),
    }


def _producer_text(origin: dict[str, Any] | None) -> str:
    if origin is None:
        return "-"
    return f"{origin['run_name'] or '?'} / {origin['step_id'] or '?'}"


def _note_limit(shown: int, limit: int) -> None:
    if shown == limit:
        click.echo(f"(first {limit} shown; pass --limit to see more)", err=True)


def _print_version(data: dict[str, Any]) -> None:
    import json

    producer = data["producer"]
    fields = [
        ("version", f"{data['name']}:{data['version']}"),
        ("id", data["id"]),
        ("type", data["data_type"]),
        ("materializer", data["materializer"]),
        ("size", f"{human_size(data['size'])} ({data['size']} bytes)"),
        ("content hash", data["content_hash"]),
        ("uri", data["uri"]),
        ("created", when(data["created_at"])),
        (
            "producer",
            f"{_producer_text(producer)} (step run {producer['step_run_id']})" if producer else "-",
        ),
    ]
    width = max(len(key) for key, _ in fields)
    for key, value in fields:
        click.echo(f"{key:<{width}}  {value}")
    click.echo("\nmetadata")
    if not data["metadata"]:
        click.echo("  (none)")
    key_width = max((len(key) for key in data["metadata"]), default=0)
    for key, value in data["metadata"].items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        click.echo(f"  {key:<{key_width}}  {text}")
    click.echo("\nconsumers")
    if not data["consumers"]:
        click.echo("  (none)")
    else:
        print_table(
            None,
            ["RUN", "STEP", "INPUT"],
            [(c["run_name"], c["step_id"], c["input_name"]) for c in data["consumers"]],
        )
    click.echo("\nvisualizations")
    if not data["visualizations"]:
        click.echo("  (none)")
        return
    print_table(
        None,
        ["NAME", "KIND", "URI"],
        [(v["name"], v["kind"], v["uri"]) for v in data["visualizations"]],
    )
