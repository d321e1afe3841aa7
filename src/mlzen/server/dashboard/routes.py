"""The dashboard's pages: thin handlers that read through the Client and
``dashboard.queries`` and render a Jinja2 template.

A page request without a valid session goes to ``/login`` and comes back after it. The
two JSON endpoints that ``live.js`` polls answer 401 instead, like the REST API. Every
form that changes something (log in, log out, promote, delete) posts the CSRF token of
:mod:`mlzen.server.sessions` and is refused from another origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from mlzen.client import Client
from mlzen.errors import ConfigError, MlzenError, NotFoundError, TooManyAttemptsError
from mlzen.server import sessions, throttle
from mlzen.server.auth import (
    Role,
    User,
    end_session,
    is_https,
    require_viewer,
    set_session_cookie,
    user_from_request,
)
from mlzen.server.dashboard import dag, graphs, queries
from mlzen.server.dashboard.templating import duration, render, span, when
from mlzen.server.deps import get_client

PER_PAGE = 50
# Bounded so that the database never sees an offset larger than its integers.
MAX_PAGE = 10**9
# A step page shows at most this many characters of logs, the end of them.
LOG_CHARS = 200_000
router = APIRouter(include_in_schema=False)
Handler = TypeVar("Handler", bound=Callable[..., Any])


def _login_required(request: Request) -> User:
    user = user_from_request(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "Log in first.", headers={"Location": _login_url(target)})
    return user


PageUser = Annotated[User, Depends(_login_required)]
ApiUser = Annotated[User, Depends(require_viewer)]
ClientDep = Annotated[Client, Depends(get_client)]


def _login_url(target: str) -> str:
    return "/login" + (f"?{urlencode({'next': target})}" if target not in ("", "/") else "")


def _safe_next(target: str | None) -> str:
    """Only a path on this server, so the login form cannot redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


def html_errors(handler: Handler) -> Handler:
    """Render an ``MlzenError`` raised by a page as an error page, not as JSON."""

    @functools.wraps(handler)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(request, *args, **kwargs)
        except NotFoundError as exc:
            return render(request, "error.html", {"error": exc, "title": "Not found"}, 404)
        except MlzenError as exc:
            return render(request, "error.html", {"error": exc, "title": "Error"}, 409)

    return wrapper  # type: ignore[return-value]


# -- login --------------------------------------------------------------------------------


def _login_page(
    request: Request, next: str | None, error: str | None, status_code: int, name: str = ""
) -> Response:
    """The login form, with the pre-session token its post must carry (and the cookie
    the token must match)."""
    token = sessions.login_form_token(request)
    context = {"next": _safe_next(next), "error": error, "name": name, "login_token": token}
    response = render(request, "login.html", context, status_code=status_code)
    sessions.set_login_cookie(response, token, secure=is_https())
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if user_from_request(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next, None, 200)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2048)] = "/runs",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Log in with the form; refused when posted from another site or without the
    form's token, and throttled (429) after too many attempts."""
    expected = request.cookies.get(sessions.LOGIN_COOKIE, "")
    problem = sessions.csrf_problem(request, expected, csrf_token)
    if problem:
        if not expected and not sessions.cross_site(request):
            problem = "The login form has expired. Log in again."
        return _login_page(request, next, problem, 403, name)
    address = request.client.host if request.client else "unknown"
    try:
        user = throttle.login(request.app.state.store, name, password, address)
    except TooManyAttemptsError as exc:
        response = _login_page(request, next, exc.message, 429, name)
        response.headers["Retry-After"] = str(exc.fields["retry_after"])
        return response
    if user is None:
        return _login_page(request, next, "Wrong user name or password.", 401, name)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, user, store=request.app.state.store)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """End the session (on the server, not only in this browser), then the login page."""
    refused = _refused_form(request, csrf_token)
    if refused is not None:
        return refused
    response = RedirectResponse("/login", status_code=303)
    end_session(request, response)
    return response


def _refused_form(request: Request, csrf_token: str, role: Role = "viewer") -> Response | None:
    """The page refusing a dashboard form's post, or ``None`` when it may go ahead: the
    caller is logged in with ``role`` (or more) and, when a session cookie is what logs
    them in, the post carries its CSRF token and comes from this origin."""
    user = user_from_request(request)
    if user is None:
        return RedirectResponse(_login_url("/runs"), status_code=303)
    session: sessions.Session | None = request.state.session
    problem = sessions.csrf_problem(request, session.csrf_token, csrf_token) if session else None
    if problem is None and not user.can(role):
        problem = (
            f"This needs the '{role}' role; user '{user.name}' is '{user.role}'. An admin "
            "can give you another role."
        )
    if problem is None:
        return None
    error = MlzenError(problem)
    return render(request, "error.html", {"error": error, "title": "Refused"}, 403)


@router.get("/")
def home(user: PageUser) -> Response:
    return RedirectResponse("/runs", status_code=303)


# -- pipelines ----------------------------------------------------------------------------


@router.get("/pipelines")
@html_errors
def pipelines(request: Request, user: PageUser, client: ClientDep) -> Response:
    return render(request, "pipelines.html", {"pipelines": client.list_pipelines()})


@router.get("/pipelines/{name}")
@html_errors
def pipeline(request: Request, name: str, user: PageUser, client: ClientDep) -> Response:
    row = client.get_pipeline(name)
    spec = queries.latest_spec(client.store, row["id"])
    svg = None
    if spec is not None:
        nodes, edges = graphs.run_graph(spec, {}, run_id=None, run_status="")
        svg = dag.render_svg(dag.layout(nodes, edges), title=f"DAG of pipeline {name}")
    runs = queries.run_page(client.store, pipeline=name, per_page=20)
    return render(request, "pipeline.html", {"pipeline": row, "svg": svg, "runs": runs})


# -- runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunQuery:
    """The runs table's query string: its filters and page number."""

    pipeline: str | None
    status: str | None
    q: str | None
    page: int

    @property
    def filters(self) -> dict[str, str]:
        """The filters that are set, by query parameter name."""
        given = (("pipeline", self.pipeline), ("status", self.status), ("q", self.q))
        return {k: v for k, v in given if v}


def _run_query(
    pipeline: Annotated[str | None, Query(max_length=255)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=255)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> RunQuery:
    return RunQuery(pipeline, status, q, page)


RunQueryDep = Annotated[RunQuery, Depends(_run_query)]


def _run_page(client: Client, query: RunQuery) -> queries.RunPage:
    def fetch() -> queries.RunPage:
        return queries.run_page(
            client.store,
            pipeline=query.pipeline,
            status=query.status,
            search=query.q,
            page=query.page,
            per_page=PER_PAGE,
        )

    found = fetch()
    running = [run["id"] for run in found.runs if run["status"] == "running"]
    if running and client.store.expire_stale_runs(running):
        found = fetch()
    return found


@router.get("/runs")
@html_errors
def runs(request: Request, user: PageUser, client: ClientDep, query: RunQueryDep) -> Response:
    filters = query.filters
    found = _run_page(client, query)
    context = {
        "page": found,
        "filters": filters,
        "query": urlencode({**filters, "page": query.page}),
        "filter_query": urlencode(filters),
        "pipelines": queries.pipeline_names(client.store),
        "statuses": queries.RUN_STATUSES,
    }
    return render(request, "runs.html", context)


@router.get("/runs/rows")
def run_rows(request: Request, user: ApiUser, client: ClientDep, query: RunQueryDep) -> Response:
    """The rows of the runs table alone, which ``live.js`` swaps in."""
    return render(request, "_run_rows.html", {"page": _run_page(client, query)})


@router.get("/runs/{run_ref}")
@html_errors
def run(request: Request, run_ref: str, user: PageUser, client: ClientDep) -> Response:
    found = client.get_pipeline_run(run_ref)
    steps = {step_id: step._row for step_id, step in found.steps.items()}
    nodes, edges = graphs.run_graph(
        found.spec_data, steps, run_id=found.id, run_status=found.status
    )
    svg = dag.render_svg(dag.layout(nodes, edges), title=f"DAG of run {found.name}")
    order = [step["id"] for step in found.spec_data.get("steps", [])]
    outputs = queries.outputs_of(client.store, [row["id"] for row in steps.values()])
    rows = [
        {
            "id": step_id,
            "status": graphs.step_status(steps.get(step_id), found.status),
            "run": steps.get(step_id),
            "outputs": outputs.get(steps[step_id]["id"], []) if step_id in steps else [],
        }
        for step_id in order
    ]
    context = {"run": found, "svg": svg, "steps": rows, "metadata": found.metadata}
    return render(request, "run.html", context)


@router.post("/runs/{run_ref}/delete")
@html_errors
def delete_run(
    request: Request,
    run_ref: str,
    client: ClientDep,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Delete a finished run and the artifact versions only it used (editor)."""
    refused = _refused_form(request, csrf_token, "editor")
    if refused is not None:
        return refused
    found = client.get_pipeline_run(run_ref)
    if found.status == "running":
        raise ConfigError(
            f"Run '{found.name}' is still running. Wait for it to finish, then delete it.",
            run=found.name,
        )
    client.store.delete_run(found.id)
    return RedirectResponse("/runs", status_code=303)


@router.get("/runs/{run_id}/live.json")
def run_live(run_id: str, user: ApiUser, client: ClientDep) -> JSONResponse:
    """A run's status and its steps' statuses, for ``live.js``."""
    store = client.store
    states = queries.run_states(store, [run_id])
    if run_id in states and states[run_id]["status"] == "running":
        if store.expire_stale_runs([run_id]):
            states = queries.run_states(store, [run_id])
    if run_id not in states:
        return JSONResponse({"detail": f"No pipeline run with id '{run_id}'."}, status_code=404)
    state = states[run_id]
    rows = queries.step_states(store, run_id)
    outputs = queries.outputs_of(store, [row["id"] for row in rows])
    steps = {
        row["step_id"]: {
            "status": row["status"],
            "started_at": when(row["started_at"]),
            "duration": duration(span(row["started_at"], row["ended_at"])),
            "attempts": row["attempts"],
            "outputs": [
                {
                    "name": o["name"],
                    "label": f"{o['artifact']}:{o['version']}",
                    "href": graphs.artifact_href(o["id"]),
                }
                for o in outputs.get(row["id"], [])
            ],
        }
        for row in rows
    }
    return JSONResponse(
        {
            "status": state["status"],
            "duration": duration(span(state["created_at"], state["ended_at"])),
            "ended_at": when(state["ended_at"]),
            "steps": steps,
            "pending": graphs.PENDING if state["status"] == "running" else graphs.NOT_RUN,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/runs/{run_ref}/steps/{step_id}")
@html_errors
def step(
    request: Request, run_ref: str, step_id: str, user: PageUser, client: ClientDep
) -> Response:
    from mlzen.explain import CacheExplanation, explain_step

    found = client.get_pipeline_run(run_ref)
    specs = {s["id"]: s for s in found.spec_data.get("steps", [])}
    if step_id not in specs:
        raise NotFoundError(
            f"Run '{found.name}' has no step '{step_id}'. Its steps: {', '.join(specs)}.",
            step_name=step_id,
        )
    step_run = found.steps.get(step_id)
    explanation: CacheExplanation | MlzenError | None = None
    if step_run is not None and step_run.status != "running":
        try:
            explanation = explain_step(client, found.id, step_id)
        except MlzenError as exc:
            explanation = exc
    context = {
        "run": found,
        "spec": specs[step_id],
        "step": step_run,
        "status": graphs.step_status(step_run._row if step_run else None, found.status),
        "inputs": step_run.inputs if step_run else {},
        "outputs": step_run.outputs if step_run else {},
        "metadata": step_run.metadata if step_run else {},
        "logs": step_run.logs[-LOG_CHARS:] if step_run else "",
        "logs_cut": len(step_run.logs) - LOG_CHARS if step_run else 0,
        "explanation": explanation,
        "cached_from": (
            client.get_run_step(step_run.cached_from_id)
            if step_run is not None and step_run.cached_from_id
            else None
        ),
    }
    return render(request, "step.html", context)


# -- artifacts ----------------------------------------------------------------------------


@router.get("/artifacts")
@html_errors
def artifacts(request: Request, user: PageUser, client: ClientDep) -> Response:
    from mlzen.store import queries as store_queries

    summaries = store_queries.artifact_summaries(client.store)
    return render(request, "artifacts.html", {"artifacts": summaries})


@router.get("/artifacts/{name}")
@html_errors
def artifact_latest(request: Request, name: str, user: PageUser, client: ClientDep) -> Response:
    version = client.get_artifact_version(name)
    return RedirectResponse(graphs.artifact_href(version.id), status_code=303)


@router.get("/artifact-versions/{version_id}")
@html_errors
def artifact_version(
    request: Request, version_id: str, user: PageUser, client: ClientDep
) -> Response:
    from mlzen.store import queries as store_queries

    row = store_queries.get_artifact_versions(client.store, [version_id]).get(version_id)
    if row is None:
        raise NotFoundError(
            f"No artifact version with id '{version_id}'.", artifact_version_id=version_id
        )
    version = client.get_artifact_version(version_id)
    found = queries.lineage(client.store, version_id)
    nodes, edges = graphs.lineage_graph(found, version_id)
    svg = dag.render_svg(dag.layout(nodes, edges), title=f"Lineage of {version.name}")
    producer = found.step_runs.get(version.producer_step_run_id or "")
    context = {
        "version": version,
        "metadata": version.metadata,
        "svg": svg,
        "truncated": found.truncated,
        "producer": producer,
        "consumers": [
            found.step_runs[step] for v, step, _ in sorted(found.edges) if v == version_id
        ],
        # Tables (HTML) first: they say the most about a value at a glance.
        "visualizations": sorted(
            queries.visualizations(client.store, version_id),
            key=lambda v: (v["kind"] != "html", v["name"]),
        ),
        "siblings": queries.artifact_siblings(client.store, row["artifact_id"]),
        "models": queries.models_of_artifact(client.store, version_id),
    }
    return render(request, "artifact.html", context)


@router.get("/artifact-versions/{version_id}/visualizations/{name}")
def visualization_file(
    request: Request, version_id: str, name: str, user: ApiUser, client: ClientDep
) -> Response:
    """A recorded visualization's file. Only URIs recorded in the store are read, through
    the artifact store, which checks the folder's hash; HTML is sandboxed."""
    from mlzen.artifacts.visualization import MEDIA_TYPES, visualization_path

    row = queries.visualization(client.store, version_id, name)
    if row is None:
        return JSONResponse({"detail": f"No visualization '{name}'."}, status_code=404)
    try:
        path = visualization_path(
            client.stack.artifact_store,
            row["uri"],
            artifact_store_id=row["artifact_store_id"],
            artifact=f"version {row['version']}",
        )
    except MlzenError as exc:
        return JSONResponse({"detail": exc.message}, status_code=404)
    headers = {
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
    }
    media_type = MEDIA_TYPES.get(row["kind"], "application/octet-stream")
    if row["kind"] in ("csv", "markdown"):
        media_type = "text/plain; charset=utf-8"
    return FileResponse(path, media_type=media_type, headers=headers)


# -- models -------------------------------------------------------------------------------


@router.get("/models")
@html_errors
def models(request: Request, user: PageUser, client: ClientDep) -> Response:
    return render(request, "models.html", {"models": queries.list_models(client.store)})


@router.get("/models/{name}")
@html_errors
def model(request: Request, name: str, user: PageUser, client: ClientDep) -> Response:
    from mlzen.model import STAGES

    row, versions = queries.model_versions(client.store, name)
    context = {
        "model": row,
        "versions": versions,
        "stages": STAGES,
        "can_edit": user.can("editor"),
    }
    return render(request, "model.html", context)


@router.post("/models/{name}/versions/{version}/promote")
@html_errors
def promote(
    request: Request,
    name: str,
    version: str,
    client: ClientDep,
    stage: Annotated[str, Form(max_length=32)] = "",
    force: Annotated[bool, Form()] = False,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Move a model version to a stage (editor); taking a stage another version holds
    needs ``force`` (that version is archived)."""
    refused = _refused_form(request, csrf_token, "editor")
    if refused is not None:
        return refused
    client.get_model_version(name, version).promote(stage, force=force)
    return RedirectResponse(f"/models/{quote(name, safe='')}", status_code=303)


# -- comparison ---------------------------------------------------------------------------


@router.get("/compare")
@html_errors
def compare(
    request: Request,
    user: PageUser,
    client: ClientDep,
    old: str | None = None,
    new: str | None = None,
    run: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Compare runs ``old`` and ``new``; or the two ``run`` values ticked on the runs page,
    the older one first. Outputs whose format can run code when loaded are compared by
    hash and metadata only (``mlzen.server.trust``)."""
    from mlzen.comparison import compare_runs
    from mlzen.server import trust

    if run and len(run) == 2 and not (old or new):
        pair = sorted((client.get_pipeline_run(r) for r in run), key=lambda r: r.created_at)
        query = urlencode({"old": pair[0].id, "new": pair[1].id})
        return RedirectResponse(f"/compare?{query}", status_code=303)
    diff = None
    if old and new:
        diff = compare_runs(
            client,
            client.get_pipeline_run(old),
            client.get_pipeline_run(new),
            loadable=lambda version: trust.loadable(version.materializer),
        )
    return render(request, "compare.html", {"diff": diff, "old": old or "", "new": new or ""})
