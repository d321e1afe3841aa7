"""What an editor can send a team server without mlzen's client: raw store calls.

The attacker of the fault tests holds an editor API key and speaks the store API
(``POST /api/v1/store/<operation>``) directly, recording whatever fields it likes.
"""

from __future__ import annotations

import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx

from mlzen.artifacts.hashing import hash_folder
from mlzen.store.operations import decode, encode


def store_call(url: str, key: str, operation: str, **arguments: Any) -> httpx.Response:
    """One store operation on the server at ``url``, as the holder of ``key``."""
    return httpx.post(
        f"{url}/api/v1/store/{operation}",
        json={"arguments": encode(arguments)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return decode(response.json()["result"])


def content_folder(where: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    """``files`` in a folder named like a content-addressed one (``<h2>/<hash>``) under
    ``where``; returns the folder and its content hash."""
    draft = where / f"draft-{uuid.uuid4().hex}"
    draft.mkdir(parents=True)
    for name, data in files.items():
        (draft / name).write_bytes(data)
    content_hash, _ = hash_folder(draft)
    folder = where / content_hash[:2] / content_hash
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(draft, folder)
    return folder, content_hash


class Payload:
    """Unpickles to a call that writes ``marker``: proof that loading ran the attacker's
    code. Only the standard library is needed to load it, as in any Python process."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Path.write_text, (self.marker, "the pickle ran\n")


def pickled_payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=5)


def forge_version(
    url: str,
    key: str,
    *,
    name: str,
    uri: str,
    content_hash: str,
    materializer: str = "mlzen.artifacts.builtin:JSONMaterializer",
    data_type: str = "builtins.dict",
    size: int = 1,
    artifact_store_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Record a run with one step whose output ``name`` is whatever the fields say.

    Returns ``{"run": run name, "version": artifact version id}``; with ``model``, the
    output is linked to a new version of that model.
    """
    run_name = f"forged-{uuid.uuid4().hex[:12]}"
    run_id = result(
        store_call(
            url,
            key,
            "metadata.create_run",
            pipeline_name="forged",
            run_name=run_name,
            spec={"name": "forged", "steps": {}, "parameters": {}},
            parameters={},
            stack="local",
            code_version={},
            environment={},
            lease_seconds=600.0,
        )
    )
    step_run_id = result(
        store_call(
            url,
            key,
            "metadata.start_step_run",
            run_id=run_id,
            step_id="forge",
            step_name="forge",
            parameters={},
            config={},
            source="",
            code_hash="0" * 64,
            cache_key=uuid.uuid4().hex,
            cache_key_parts={},
            inputs={},
        )
    )
    model_version_id = None
    if model is not None:
        model_version_id = result(
            store_call(url, key, "models.resolve_version", name=model, version=None, run_id=run_id)
        )["id"]
    output: dict[str, Any] = {
        "name": name,
        "uri": uri,
        "content_hash": content_hash,
        "materializer": materializer,
        "data_type": data_type,
        "size": size,
        "metadata": {},
        "visualizations": [],
    }
    if artifact_store_id is not None:
        output["artifact_store_id"] = artifact_store_id
    response = store_call(
        url,
        key,
        "metadata.finish_step_run",
        step_run_id=step_run_id,
        status="completed",
        outputs=[output],
        model_version_id=model_version_id,
    )
    created = result(response)
    result(store_call(url, key, "metadata.finish_run", run_id=run_id, status="completed"))
    return {"run": run_name, "version": created[name]}
