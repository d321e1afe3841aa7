"""Cache keys: when may a step reuse an earlier run's outputs instead of running?

A key hashes the step's code fingerprint (its source and the project code it uses,
installed packages by version), its parameters, the content hashes of its inputs,
its output names and declared types, and its settings. The parts are stored with
every step run, so a later command can explain why a step was or was not cached.

A run with the same key is reused only while its outputs are still stored as they were
saved: :func:`output_available` checks each output's files by name and size (cheap, no
hashing) against the manifest recorded with its version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlzen.artifacts.store import ArtifactStore
from mlzen.runtime.fingerprint import fingerprint_hash
from mlzen.spec import StepSpec


def cache_key_parts(
    step_spec: StepSpec, code: dict[str, str], input_hashes: dict[str, str]
) -> dict[str, Any]:
    """The parts of a step invocation's cache key, as stored with its step run.

    Args:
        step_spec: the invocation.
        code: its code fingerprint (``fingerprint.code_fingerprint``).
        input_hashes: content hash of each input artifact, by argument name.
    """
    return {
        "code": fingerprint_hash(code),
        "code_parts": code,
        "parameters": step_spec.parameters,
        "inputs": dict(sorted(input_hashes.items())),
        "outputs": {output.name: output.type for output in step_spec.outputs},
        "settings": step_spec.settings,
    }


def cache_key(parts: dict[str, Any]) -> str:
    """The hash of everything in ``parts`` except the per-function breakdown."""
    keyed = {k: v for k, v in parts.items() if k != "code_parts"}
    text = json.dumps(keyed, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def output_available(artifacts: ArtifactStore, uri: str, files: Mapping[str, int] | None) -> bool:
    """Whether an output saved at ``uri`` may be reused by a cache hit.

    Args:
        artifacts: the stack's artifact store.
        uri: where the artifact version's folder is.
        files: its manifest (relative path → size) as recorded when it was saved;
            ``None`` for versions recorded before manifests were, which only need their
            folder to exist.
    """
    if files is None:
        return artifacts.exists(uri)
    return artifacts.has_files(uri, files)
