"""Why a step run was, or was not, a cache hit.

Every step run stores the parts of its cache key (``runtime.caching``): the code
fingerprint (a hash per project function, a version per package), parameters, input
content hashes, outputs and settings. ``explain_step`` says where a cached step took its
outputs from; for a step that ran, it compares those parts with the closest earlier run
of the same step and names what differs. ``mlzen runs explain`` renders the result.

Example:
    >>> explanation = explain_step(Client(), "latest", "train")
    >>> explanation.reason, [c.name for c in explanation.diff.parameters]
    ('key_changed', ['C'])
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlzen.errors import NotFoundError
from mlzen.store import queries

# Why a step was (not) a cache hit: the values of ``CacheExplanation.reason``.
CACHED = "cached"
CACHE_DISABLED = "cache_disabled"
NO_EARLIER_RUN = "no_earlier_run"
OUTPUTS_MISSING = "outputs_missing"
EARLIER_RUN_UNFINISHED = "earlier_run_unfinished"
EARLIER_RUN_FAILED = "earlier_run_failed"
KEY_CHANGED = "key_changed"

_SUCCESS = ("completed", "cached")


@dataclass
class StepRunRef:
    """A step run named for people: which step of which run."""

    step_run_id: str
    step: str
    run_id: str
    run_name: str
    pipeline: str
    status: str


@dataclass
class Change:
    """One entry of a mapping that differs: ``change`` is added, removed or changed."""

    name: str
    change: str
    old: Any = None
    new: Any = None


@dataclass
class InputChange:
    """An input artifact whose content hash differs from the earlier run's."""

    argument: str
    change: str
    old_hash: str | None
    new_hash: str | None
    old_artifact: str | None  # "name:version"
    new_artifact: str | None
    producer: str | None  # "step_id.output" that feeds this argument in the pipeline


@dataclass
class KeyDiff:
    """The parts of two cache keys that differ, each broken down.

    ``functions`` holds ``module:qualname`` entries whose source hash differs (``old``
    and ``new`` are hashes); ``packages`` holds distributions whose version differs;
    ``source_diff`` is a unified diff of the step's own source, empty when unchanged.
    ``other`` names key parts that differ without a breakdown (records from older
    versions of mlzen).
    """

    functions: list[Change] = field(default_factory=list)
    source_diff: str = ""
    packages: list[Change] = field(default_factory=list)
    parameters: list[Change] = field(default_factory=list)
    inputs: list[InputChange] = field(default_factory=list)
    outputs: list[Change] = field(default_factory=list)
    settings: list[Change] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def parts(self) -> list[str]:
        """Names of the key parts that differ, e.g. ``["code", "parameters"]``."""
        found = {
            "code": bool(self.functions or self.packages or self.source_diff),
            "parameters": bool(self.parameters),
            "inputs": bool(self.inputs),
            "outputs": bool(self.outputs),
            "settings": bool(self.settings),
        }
        named = [part for part, differs in found.items() if differs]
        return named + [part for part in self.other if part not in named]


@dataclass
class CacheExplanation:
    """Why step ``step`` of run ``run_name`` was (``cached``) or was not a cache hit.

    ``reason`` is one of ``cached``, ``cache_disabled``, ``no_earlier_run``,
    ``outputs_missing``, ``earlier_run_unfinished``, ``earlier_run_failed`` or
    ``key_changed``; ``summary`` says it in a sentence. ``cached_from`` is the step run
    whose outputs a hit reused; ``compared_with`` the earlier step run the key was
    compared with, and ``diff`` what differs from it.
    """

    run_id: str
    run_name: str
    step: str
    step_name: str
    step_run_id: str
    status: str
    cached: bool
    reason: str
    summary: str
    step_function: str = ""
    cached_from: StepRunRef | None = None
    compared_with: StepRunRef | None = None
    diff: KeyDiff | None = None
    missing_outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the ``--json`` shape), with ``diff.parts`` filled in."""
        data = asdict(self)
        if self.diff is not None:
            data["diff"]["parts"] = self.diff.parts
        return data


def explain_step(client: Any, run_ref: str, step_id: str) -> CacheExplanation:
    """Explain why step invocation ``step_id`` of run ``run_ref`` was or was not cached.

    Args:
        client: a ``mlzen.Client``.
        run_ref: a run id, unique id prefix, name or ``"latest"``.
        step_id: the invocation id, e.g. ``train`` or ``train_2``.

    Raises:
        NotFoundError: there is no such run, or the run has no such step run; the
            message lists the run's steps.
    """
    run = client.get_pipeline_run(run_ref)
    step = _step_run(run, step_id)
    explanation = CacheExplanation(
        run_id=run.id,
        run_name=run.name,
        step=step.name,
        step_name=step.step_name,
        step_run_id=step.id,
        status=step.status,
        cached=False,
        reason="",
        summary="",
        step_function=str(step.config.get("source", "")),
    )
    if step.status == "cached" and step.cached_from_id:
        explanation.cached = True
        explanation.reason = CACHED
        explanation.cached_from = _ref(client, step.cached_from_id)
        origin = explanation.cached_from
        explanation.summary = (
            f"Cache hit: reused the outputs of step '{origin.step}' in run '{origin.run_name}' "
            f"(step run {origin.step_run_id[:8]}); nothing was recomputed."
            if origin is not None
            else f"Cache hit: reused the outputs of step run {step.cached_from_id[:8]} "
            "(since deleted)."
        )
        return explanation

    store = client.store
    if step.config.get("enable_cache", True) is False:
        explanation.reason = CACHE_DISABLED
        explanation.summary = (
            "Not cached: caching was disabled for this step (enable_cache=False on the step, "
            "the pipeline or the run configuration), so it always runs."
        )
        previous = _previous(client, run, step)
        if previous is not None:
            explanation.compared_with = _ref(client, previous.id)
            explanation.diff = key_diff(previous, step, client)
        return explanation

    same_key = queries.earlier_step_run_with_key(
        store, run_id=run.id, cache_key=step.cache_key, before=step.started_at
    )
    if same_key is not None:
        earlier = client.get_run_step(same_key["id"])
        explanation.compared_with = origin = _ref(client, earlier.id)
        where = f"step '{origin.step}' in run '{origin.run_name}'" if origin else "an earlier run"
        explanation.diff = KeyDiff()
        if earlier.ended_at is None or earlier.ended_at > step.started_at:
            explanation.reason = EARLIER_RUN_UNFINISHED
            explanation.summary = (
                f"Not cached: identical key, but the earlier step run with it ({where}) had "
                "not finished when this one started, so there were no outputs to reuse yet."
            )
            return explanation

        artifact_store = client.stack.artifact_store
        explanation.missing_outputs = [
            name
            for name, version in earlier.outputs.items()
            if not _stored_here(artifact_store, version)
        ]
        explanation.reason = OUTPUTS_MISSING
        still = ", ".join(explanation.missing_outputs)
        explanation.summary = (
            "Not cached: identical key, but the earlier outputs were missing from the "
            f"artifact store (the step run with the same key: {where}"
            + (f"; still missing: {still})." if still else ").")
        )
        return explanation

    previous = _previous(client, run, step)
    if previous is None:
        explanation.reason = NO_EARLIER_RUN
        explanation.summary = (
            f"Not cached: no earlier run of this step (invocation '{step.name}' of step "
            f"'{step.step_name}'), so there was nothing to reuse."
        )
        return explanation
    explanation.compared_with = origin = _ref(client, previous.id)
    where = f"step '{origin.step}' in run '{origin.run_name}'" if origin else "the earlier run"
    if previous.cache_key == step.cache_key:
        explanation.reason = EARLIER_RUN_FAILED
        explanation.diff = KeyDiff()
        explanation.summary = (
            f"Not cached: identical key, but the earlier run of this step ({where}) did not "
            f"succeed (status '{previous.status}'); only successful step runs are reused."
        )
        return explanation
    explanation.reason = KEY_CHANGED
    explanation.diff = diff = key_diff(previous, step, client)
    explanation.summary = (
        f"Not cached: the cache key differs from {where} "
        f"({previous.status}) in: {', '.join(diff.parts) or 'unknown parts'}."
    )
    return explanation


def key_diff(old: Any, new: Any, client: Any = None) -> KeyDiff:
    """What differs between the cache keys of step runs ``old`` and ``new``.

    ``client`` (optional) lets input changes name their artifact versions and producers.
    """
    old_parts, new_parts = old.cache_key_parts, new.cache_key_parts
    old_code, new_code = old_parts.get("code_parts", {}), new_parts.get("code_parts", {})
    diff = KeyDiff(
        functions=_changes(_functions(old_code), _functions(new_code)),
        packages=_changes(_packages(old_code), _packages(new_code)),
        parameters=_changes(old_parts.get("parameters", {}), new_parts.get("parameters", {})),
        outputs=_changes(old_parts.get("outputs", {}), new_parts.get("outputs", {})),
        settings=_changes(old_parts.get("settings", {}), new_parts.get("settings", {})),
    )
    if old.source != new.source:
        diff.source_diff = "".join(
            difflib.unified_diff(
                old.source.splitlines(keepends=True),
                new.source.splitlines(keepends=True),
                fromfile=f"{_run_label(client, old)}:{old.name}",
                tofile=f"{_run_label(client, new)}:{new.name}",
            )
        )
        if diff.source_diff and not diff.source_diff.endswith("\n"):
            diff.source_diff += "\n"
    diff.inputs = _input_changes(old, new, client)
    covered = {"code_parts", *diff.parts}
    for part in sorted(set(old_parts) | set(new_parts)):
        if part in covered:
            continue
        if not _same(old_parts.get(part), new_parts.get(part)):
            diff.other.append(part)
    return diff


def _step_run(run: Any, step_id: str) -> Any:
    steps = run.steps
    if step_id in steps:
        return steps[step_id]
    planned = [s["id"] for s in run.spec_data.get("steps", [])]
    # In the order the pipeline calls them: step runs start in a parallel, varying order.
    ran = ", ".join([s for s in planned if s in steps] + sorted(set(steps) - set(planned)))
    ran = ran or "none"
    if step_id in planned:
        raise NotFoundError(
            f"Step '{step_id}' of run '{run.name}' never ran (a step before it failed or the "
            f"run stopped), so it has no cache key to explain. Steps that ran: {ran}.",
            run=run.name,
            step_name=step_id,
        )
    raise NotFoundError(
        f"Run '{run.name}' has no step '{step_id}'. Its steps: {ran}. Pass one of these "
        "invocation ids.",
        run=run.name,
        step_name=step_id,
    )


def _previous(client: Any, run: Any, step: Any) -> Any:
    row = queries.previous_step_run(
        client.store,
        run_id=run.id,
        step_id=step.name,
        step_name=step.step_name,
        before=step.started_at,
    )
    return None if row is None else client.get_run_step(row["id"])


def _ref(client: Any, step_run_id: str) -> StepRunRef | None:
    try:
        step = client.get_run_step(step_run_id)
        run = client.get_pipeline_run(step.run_id)
    except NotFoundError:
        return None
    return StepRunRef(step.id, step.name, run.id, run.name, run.pipeline_name, step.status)


def _run_label(client: Any, step: Any) -> str:
    if client is None:
        return str(step.run_id[:8])
    try:
        return str(client.get_pipeline_run(step.run_id).name)
    except NotFoundError:
        return str(step.run_id[:8])


def _same(a: Any, b: Any) -> bool:
    # As the cache key sees them: 1 and 1.0 differ, key order does not.
    def text(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=repr, allow_nan=True)

    return text(a) == text(b)


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    names = list(new) + [name for name in old if name not in new]
    changes: list[Change] = []
    for name in names:
        if name not in old:
            changes.append(Change(name, "added", None, new[name]))
        elif name not in new:
            changes.append(Change(name, "removed", old[name], None))
        elif not _same(old[name], new[name]):
            changes.append(Change(name, "changed", old[name], new[name]))
    return changes


def _is_package(key: str, value: str) -> bool:
    return value == "" and "==" in key


def _functions(code_parts: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(code_parts.items()) if not _is_package(k, v)}


def _packages(code_parts: dict[str, str]) -> dict[str, str]:
    pairs = (k.partition("==") for k, v in sorted(code_parts.items()) if _is_package(k, v))
    return {name: version for name, _, version in pairs}


def _input_changes(old: Any, new: Any, client: Any) -> list[InputChange]:
    old_hashes = old.cache_key_parts.get("inputs", {})
    new_hashes = new.cache_key_parts.get("inputs", {})
    changed = _changes(old_hashes, new_hashes)
    if not changed:
        return []
    old_versions, new_versions = old.inputs, new.inputs
    new_producers = _producers(client, new)
    old_producers = _producers(client, old)
    result = []
    for change in changed:
        argument = change.name
        old_version, new_version = old_versions.get(argument), new_versions.get(argument)
        result.append(
            InputChange(
                argument=argument,
                change=change.change,
                old_hash=change.old,
                new_hash=change.new,
                old_artifact=f"{old_version.name}:{old_version.version}" if old_version else None,
                new_artifact=f"{new_version.name}:{new_version.version}" if new_version else None,
                producer=new_producers.get(argument) or old_producers.get(argument),
            )
        )
    return result


def _producers(client: Any, step: Any) -> dict[str, str]:
    """``{argument: "step_id.output"}`` for a step run's inputs, from its run's spec."""
    if client is None:
        return {}
    try:
        spec = client.get_pipeline_run(step.run_id).spec_data
    except NotFoundError:
        return {}
    for step_spec in spec.get("steps", []):
        if step_spec.get("id") == step.name:
            return {
                argument: f"{ref['step']}.{ref['output']}"
                for argument, ref in step_spec.get("inputs", {}).items()
            }
    return {}


def _stored_here(artifact_store: Any, version: Any) -> bool:
    """Whether a version's files are in the stack's artifact store (a cache hit needs it)."""
    from mlzen.artifacts.identity import ForeignArtifactError
    from mlzen.runtime.caching import output_available

    try:
        return output_available(artifact_store, version.folder_uri(), version.files)
    except ForeignArtifactError:
        return False
