"""``mlzen run``: run a pipeline from a file or module, with a live per-step view."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlzen.errors import ConfigError, MlzenError

if TYPE_CHECKING:
    from mlzen.client import Client
    from mlzen.pipelines import Pipeline
    from mlzen.spec import PipelineSpec


def load_pipeline(target: str) -> Pipeline:
    """The pipeline named by ``path/to/file.py:name`` or ``package.module:name``."""
    from mlzen.pipelines import Pipeline

    location, _, name = target.rpartition(":")
    if not location or not name:
        raise ConfigError(
            f"'{target}' does not name a pipeline. Write FILE.py:PIPELINE or "
            "package.module:PIPELINE, e.g. examples/quickstart/pipeline.py:training.",
            target=target,
        )
    if location.endswith(".py") or os.sep in location:
        path = Path(location).resolve()
        if not path.is_file():
            raise ConfigError(f"No such file '{location}'. Check the path.", target=target)
        # Imported under its file name, with its folder on sys.path, so that worker
        # processes and `mlzen runs resume` can import its steps again by module name.
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except MlzenError:
            raise
        except Exception as exc:
            sys.modules.pop(path.stem, None)
            raise _import_error(exc, location, target) from exc
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(location)
        except MlzenError:
            raise
        except ImportError as exc:
            raise ConfigError(
                f"Cannot import module '{location}': {exc}. Run from the folder that holds "
                "it or add it to PYTHONPATH.",
                target=target,
            ) from exc
        except Exception as exc:
            raise _import_error(exc, location, target) from exc
    found = getattr(module, name, None)
    if not isinstance(found, Pipeline):
        available = [k for k, v in vars(module).items() if isinstance(v, Pipeline)]
        raise ConfigError(
            f"'{location}' has no pipeline named '{name}'. Pipelines there: "
            f"{', '.join(available) or 'none'}.",
            target=target,
        )
    return found


def _import_error(exc: Exception, location: str, target: str) -> ConfigError:
    """The user error for pipeline code that failed to import: its file and line."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename or location}, line {exc.lineno}"
        return ConfigError(
            f"{where}: {type(exc).__name__}: {exc.msg}. Fix the code there, then run again.",
            target=target,
            path=exc.filename,
            line=exc.lineno,
        )
    frames = traceback.extract_tb(exc.__traceback__)
    # The innermost frame in the user's own code (not in Python's import machinery).
    own = [f for f in frames if "importlib" not in f.filename] or frames
    frame = own[-1] if own else None
    where = f"{frame.filename}, line {frame.lineno}" if frame else location
    return ConfigError(
        f"Importing the pipeline code failed at {where}: {type(exc).__name__}: {exc}. Fix "
        "the code there (or install what it imports), then run again; --debug shows the "
        "traceback.",
        target=target,
        path=frame.filename if frame else None,
        line=frame.lineno if frame else None,
    )


def parse_param(pipeline: Pipeline, raw: str) -> tuple[str, Any]:
    """``key=value`` typed by the pipeline's signature (a wrong type is a clear error)."""
    from mlzen.parameters import parse_text, signature_hints

    key, sep, text = raw.partition("=")
    if not sep or not key:
        raise ConfigError(f"--param '{raw}' is not key=value, e.g. --param C=0.5.", key=raw)
    parameters = inspect.signature(pipeline.func).parameters
    if key not in parameters:
        raise ConfigError(
            f"Pipeline '{pipeline.name}' has no parameter '{key}'. Its parameters: "
            f"{', '.join(parameters) or 'none'}.",
            key=key,
        )
    annotation = signature_hints(pipeline.func).get(key, inspect.Parameter.empty)
    return key, parse_text(annotation, text, owner=f"Pipeline '{pipeline.name}'", argument=key)


class LiveView:
    """Follows a run in the store from a background thread and draws its steps.

    On a terminal: a live table (queued / running / cached / completed / failed, elapsed).
    Elsewhere: one plain line per status change.
    """

    def __init__(self, client: Client, spec: PipelineSpec, since: Any, interactive: bool) -> None:
        self.client = client
        self.spec = spec
        self.since = since
        self.interactive = interactive
        self.statuses: dict[str, str] = {}
        self.run_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="mlzen-live-view", daemon=True)
        self._live: Any = None

    def __enter__(self) -> LiveView:
        if self.interactive:
            from rich.live import Live

            self._live = Live(self._table({}), refresh_per_second=8, transient=False)
            self._live.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._poll()
        except Exception:
            # A failing run's own error (e.g. its store went away) says more than this.
            if exc[0] is None:
                raise
        finally:
            if self._live is not None:
                self._live.stop()

    def _follow(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._poll()
            except Exception:  # noqa: S112 - the view must never break the run
                continue

    def _poll(self) -> None:
        from mlzen.store import queries

        store = self.client.store
        if self.run_id is None:
            found = queries.list_runs(
                store, pipeline=self.spec.name, created_after=self.since, limit=1
            )
            if not found:
                return
            self.run_id = found[0]["id"]
        rows = {row["step_id"]: row for row in queries.step_runs_of(store, self.run_id)}
        if self._live is not None:
            self._live.update(self._table(rows))
            return
        for step_id, row in rows.items():
            if self.statuses.get(step_id) != row["status"]:
                self.statuses[step_id] = row["status"]
                elapsed = ""
                if row["ended_at"] is not None:
                    elapsed = f" ({(row['ended_at'] - row['started_at']).total_seconds():.2f}s)"
                click.echo(f"{step_id}: {row['status']}{elapsed}")

    def _table(self, rows: dict[str, Any]) -> Any:
        from rich.table import Table

        from mlzen.cli.output import styled
        from mlzen.cli.runs import STATUS_STYLES
        from mlzen.store.metadata import utcnow

        table = Table(box=None, header_style="bold")
        for column in ("step", "status", "elapsed"):
            table.add_column(column)
        now = utcnow()
        for step_id in self.spec.steps:
            row = rows.get(step_id)
            if row is None:
                table.add_row(step_id, "[dim]queued[/]", "")
                continue
            end = row["ended_at"] or now
            status = row["status"]
            table.add_row(
                step_id,
                styled(status, STATUS_STYLES),
                f"{(end - row['started_at']).total_seconds():.1f}s",
            )
        return table


@click.command(
    epilog="Example: mlzen run examples/quickstart/pipeline.py:training --param C=0.5 --no-cache"
)
@click.argument("target", metavar="FILE.py:PIPELINE|MODULE:PIPELINE")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML run config.")
@click.option("--param", "-p", "params", multiple=True, help="A pipeline parameter, key=value.")
@click.option("--no-cache", is_flag=True, help="Run every step, reusing nothing.")
@click.option("--run-name", help="Name for the run (may use {date} and {time}).")
def run(
    target: str,
    config_path: str | None,
    params: tuple[str, ...],
    no_cache: bool,
    run_name: str | None,
) -> None:
    """Run a pipeline on the active stack and show each step live."""
    os.environ["MLZEN_PROGRESS"] = "0"  # the live view replaces the library's progress lines
    pipeline = load_pipeline(target)
    arguments = dict(parse_param(pipeline, raw) for raw in params)
    if config_path or no_cache or run_name:
        pipeline = pipeline.with_options(
            config_path=config_path, enable_cache=False if no_cache else None, run_name=run_name
        )
    spec, steps = pipeline.build(**arguments)

    from mlzen.client import Client
    from mlzen.errors import RunFailedError
    from mlzen.store.metadata import utcnow

    client = Client()
    since = utcnow()
    view = LiveView(client, spec, since, interactive=sys.stdout.isatty())
    try:
        with view:
            finished = client.run_pipeline(spec, steps, run_name=pipeline.options.config.run_name)
    except KeyboardInterrupt:
        name = view.run_id or "the run"
        click.echo(f"Stopped {name}: running steps were marked stopped.", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # Step threads cannot be interrupted; the store already ignores what they report.
        os._exit(130)
    except RunFailedError as exc:
        _summary(exc.run)
        click.echo(
            f"Run failed in step '{exc.step_name}'. See `mlzen runs logs {exc.run.name} "
            f"{exc.step_name}`; after fixing it: mlzen runs resume {exc.run.name}",
            err=True,
        )
        sys.exit(1)
    _summary(finished)


def _summary(run: Any) -> None:
    from mlzen.cli.output import print_table, seconds

    print_table(
        f"{run.name}: {run.status} in {seconds(run.duration)}",
        ["step", "status", "duration", "outputs"],
        [
            (
                name,
                step.status,
                seconds(step.duration),
                ", ".join(f"{v.name}:{v.version}" for v in step.outputs.values()),
            )
            for name, step in run.steps.items()
        ],
    )
    click.echo(f"run id: {run.id}")
