"""``mlzen gc``: delete artifact files that no artifact version references.

``--json`` keys (stable): ``artifact_store``, ``dry_run``, ``min_age_seconds``,
``locked`` (the store's lock kept writers out), ``referenced`` (folders kept: a version
records them), ``recent`` (unreferenced folders kept: younger than ``--min-age``),
``count`` and ``bytes`` (deleted, or on a dry run to be deleted), ``garbage`` (one
``{uri, kind, size}`` per folder; ``kind`` is ``artifact`` or ``leftover``), ``young``
(one ``{uri, kind, size, age, window}`` per folder kept because it is younger than its
age window, in seconds), ``errors`` (one line per folder that could not be deleted) and
``forced`` (``--force`` was given).
"""

from __future__ import annotations

import click

from mlzen.cli.output import human_size, json_option, print_json, print_table


@click.command(epilog="Example: mlzen gc --dry-run")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Keep unreferenced folders younger than this. Default: 0 on a local store, whose "
    "lock makes gc safe beside running pipelines; 3600 on a remote (fsspec) store, which "
    "has no lock.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Collect even when the artifact store belongs to another metadata store, or "
    "when the metadata store references nothing in it (both look like a mistyped "
    "MLZEN_STORE_URL or the wrong stack).",
)
@json_option
def gc(dry_run: bool, min_age: float | None, force: bool, as_json: bool) -> None:
    """Delete unreferenced artifact files and report the bytes freed.

    Deletes the artifact folders that no artifact version references (left by deleted
    runs, or by steps that failed after saving some outputs).

    Also removes what interrupted writes left in the store's .staging/ and .trash/
    folders over an hour ago. On a local artifact store gc takes the store's lock, so it
    never deletes a folder a version references, even while other processes run
    pipelines: it waits for steps that are saving outputs. A remote store (S3, GCS, ...)
    has no lock: run gc there only while no pipeline writes to it.

    gc refuses to run when the artifact store belongs to another metadata store than the
    stack's (the identity file at its root names its owner), or when the metadata store
    references nothing in an artifact store that holds data; --force overrides both.
    """
    from mlzen.client import Client
    from mlzen.errors import ArtifactError
    from mlzen.gc import collect_garbage

    def waiting() -> None:
        click.echo("Waiting for running steps to finish saving their outputs ...", err=True)

    report = collect_garbage(Client(), dry_run, min_age=min_age, on_wait=waiting, force=force)
    if as_json:
        print_json(report.to_dict())
    else:
        if not report.locked:
            click.echo(
                f"Note: the artifact store {report.artifact_store} has no lock; only "
                f"unreferenced folders older than {report.min_age:g}s were considered. Do not "
                "run gc while pipelines write to this store.",
                err=True,
            )
        if dry_run and report.garbage:
            print_table(
                None,
                ["KIND", "SIZE", "PATH"],
                [(g.kind, human_size(g.size), g.uri) for g in report.garbage],
            )
        verb = "Would delete" if dry_run else "Deleted"
        freed = "would be freed" if dry_run else "freed"
        kept = f"kept {report.referenced} referenced"
        if report.recent:
            kept += f" and {report.recent} recent unreferenced"
        click.echo(
            f"{verb} {report.count} folder(s), {human_size(report.bytes)} {freed} "
            f"({report.bytes} bytes); {kept} artifact folder(s)."
        )
        if report.young:
            click.echo(
                f"Kept {len(report.young)} unreferenced folder(s) younger than their age "
                "window; gc deletes them once they are older:"
            )
            print_table(
                None,
                ["KIND", "SIZE", "AGE", "WINDOW", "PATH"],
                [
                    (
                        k.kind,
                        human_size(k.size),
                        "unknown" if k.age is None else f"{k.age:.0f}s",
                        f"{k.window:g}s",
                        k.uri,
                    )
                    for k in report.young
                ],
            )
    if report.errors:
        raise ArtifactError(
            f"Could not delete {len(report.errors)} folder(s), e.g. {report.errors[0]}. "
            "Check the artifact store's permissions, then run mlzen gc again.",
            artifact_uri=report.errors[0].split(": ", 1)[0],
        )
