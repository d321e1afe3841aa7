"""The prediction service: a FastAPI app around one loaded model.

Routes:

- ``POST /predict``: ``{"rows": [{"column": value, ...}, ...]}`` (or a bare list of
  rows) → ``{"predictions": [...]}``. Rows that do not fit the training columns get a
  422 whose ``detail`` lists each problem with the row and column it is in.
- ``GET /health``: ``{"status": "ok", "deployment": NAME}`` once the model is loaded.
- ``GET /info``: the model, version, stage, artifact, content hash and input columns.

A body larger than the setting ``max_request_bytes`` is refused with a 413 before it is
read (:mod:`mlzen.body_limit`); a body nested too deep to parse is a 422, and no error
sends back more than the start of a value it names.

The local deployer runs it as a process of its own::

    python -m mlzen.deployers.serving --name churn --host 127.0.0.1 --port 8000 \\
        --artifact-version <id> --stack local --served '<json>'

which loads the artifact through the stack's stores, then serves it with uvicorn.
FastAPI is imported here only, so nothing else in mlzen pays for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mlzen.body_limit import BodyLimitMiddleware
from mlzen.config import Settings, load_settings
from mlzen.deployers.base import ServedModel
from mlzen.deployers.predictor import PredictionError, Predictor
from mlzen.deployers.schema import MESSAGE_CHARS, InputError, shown


def create_app(
    name: str,
    predictor: Predictor,
    served: ServedModel,
    max_request_bytes: int = Settings.max_request_bytes,
) -> FastAPI:
    """The service's app for ``predictor``, deployed as ``name``.

    Args:
        max_request_bytes: The largest request body it accepts (the project's setting
            ``max_request_bytes`` when deployed).
    """
    schema = predictor.schema
    info = {
        "deployment": name,
        **served.to_dict(),
        "framework": predictor.framework,
        "model_class": predictor.model_class,
        "columns": schema.names,
        "input": schema.to_dict(),
    }
    app = FastAPI(
        title=f"mlzen deployment '{name}'",
        description=f"Predictions from {served.describe()}.",
        version=str(served.model_version or served.content_hash[:12]),
    )

    @app.get("/health")
    def health() -> dict[str, str]:
        """Whether the service is up (it answers only once the model is loaded)."""
        return {"status": "ok", "deployment": name}

    @app.get("/info")
    def get_info() -> dict[str, Any]:
        """What is served: model, version, stage, artifact, content hash, columns."""
        return info

    @app.post(
        "/predict",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema.request_schema()}},
            }
        },
    )
    async def predict(request: Request) -> JSONResponse:
        """Predictions for the rows in the body, in their order."""
        try:
            payload = json.loads(await request.body())
        except RecursionError:
            message = "The body nests lists or objects too deeply to read. Send flat rows."
            return _unprocessable([{"loc": ["body"], "msg": message, "type": "json_invalid"}])
        # ValueError: JSON, but not JSON Python reads (an integer of over 4300 digits).
        except (ValueError, UnicodeDecodeError) as exc:
            message = f"The body is not JSON: {shown(str(exc))}."
            return _unprocessable([{"loc": ["body"], "msg": message, "type": "json_invalid"}])
        try:
            rows = schema.parse(payload)
        except InputError as exc:
            return _unprocessable(exc.errors)
        try:
            predictions = await run_in_threadpool(predictor.predict, rows)
        except PredictionError as exc:
            message = shown(str(exc), MESSAGE_CHARS)
            return _unprocessable([{"loc": ["body"], "msg": message, "type": "model_error"}])
        return JSONResponse({"predictions": predictions})

    app.add_middleware(BodyLimitMiddleware, limit=max_request_bytes, where=f"deployment '{name}'")
    return app


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


def load_predictor(
    artifact_version_id: str, stack_name: str, declared: dict[str, Any] | None = None
) -> tuple[Predictor, Any]:
    """Load the artifact through the stack's stores and infer its input schema.

    Args:
        artifact_version_id: The artifact version to serve.
        stack_name: The stack whose stores hold it.
        declared: The model version's metadata (it may declare the input columns).
    """
    from mlzen.client import ArtifactVersion, Client
    from mlzen.deployers.predictor import infer_schema
    from mlzen.stack import load_stack
    from mlzen.store import queries

    client = Client(load_stack(stack_name))
    rows = queries.get_artifact_versions(client.store, [artifact_version_id])
    if artifact_version_id not in rows:
        raise SystemExit(
            f"mlzen: artifact version {artifact_version_id} is not in the metadata store of "
            f"stack '{stack_name}'; deploy again with a model version that exists."
        )
    artifact = ArtifactVersion(client, rows[artifact_version_id])
    model = artifact.load()
    return Predictor(model, infer_schema(model, artifact, declared)), artifact


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model, then serve it until terminated."""
    parser = argparse.ArgumentParser(prog="python -m mlzen.deployers.serving")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--artifact-version", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--served", required=True, help="ServedModel as JSON")
    parser.add_argument("--declared", default="{}", help="input columns declared, as JSON")
    args = parser.parse_args(argv)
    served = ServedModel.from_dict(json.loads(args.served))
    limit = load_settings().max_request_bytes
    print(f"mlzen: deployment '{args.name}' loading {served.describe()}", flush=True)
    try:
        predictor, _ = load_predictor(args.artifact_version, args.stack, json.loads(args.declared))
    except Exception as exc:
        traceback.print_exc()
        print(f"mlzen: cannot load the model: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print(
        f"mlzen: serving a {predictor.framework} model ({predictor.model_class}); "
        f"input: {predictor.schema.source}",
        flush=True,
    )
    import uvicorn

    uvicorn.run(
        create_app(args.name, predictor, served, limit),
        host=args.host,
        port=args.port,
        log_level="info",
    )


if __name__ == "__main__":
    main()
