"""The team server with 10,000 runs in its store: server time of the runs API and page.

    python benchmarks/server_bench.py [--runs 10000] [--requests 30] [--store-url URL] [--json]

Fills a throw-away project's store (SQLite by default, or ``--store-url``: a PostgreSQL
database whose ``public`` schema is dropped first, so never one you keep) with ``--runs`` runs of
three pipelines in mixed statuses, starts the server on 127.0.0.1 under uvicorn, and
sends each request ``--requests`` times after a warm-up. The figure is the server's own
time from its ``Server-Timing: app;dur=`` header (from receiving the request to
starting the answer, so network and client time are left out): the median and the
95th percentile, next to the 100 ms target. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

TARGET_MS = 100.0
STATUSES = ("completed",) * 8 + ("failed", "cached")
PIPELINES = ("training", "evaluation", "etl")


def populate(store: Any, runs: int) -> None:
    """``runs`` runs, newest first one second apart, with a small realistic spec."""
    from sqlalchemy import insert

    from mlzen.store import tables as t
    from mlzen.store.metadata import new_id, utcnow

    now = utcnow()
    pipeline_ids = {name: new_id() for name in PIPELINES}
    spec = {"name": "training", "steps": [], "parameters": {"C": 1.0}}
    rows = [
        {
            "id": new_id(),
            "name": f"bench-{i}",
            "pipeline_id": pipeline_ids[PIPELINES[i % len(PIPELINES)]],
            "status": STATUSES[i % len(STATUSES)],
            "spec": spec,
            "parameters": {"i": i, "C": 1.0},
            "stack": "local",
            "code_version": {"commit": "0" * 40, "dirty": False},
            "environment": {"python": "3.11"},
            "created_at": now - timedelta(seconds=i),
            "ended_at": now - timedelta(seconds=i) + timedelta(milliseconds=500),
            "heartbeat_at": now,
            "lease_seconds": 60.0,
        }
        for i in range(runs)
    ]
    with store.write() as connection:
        connection.execute(
            insert(t.pipelines),
            [{"id": i, "name": n, "created_at": now} for n, i in pipeline_ids.items()],
        )
        for start in range(0, len(rows), 2000):
            connection.execute(insert(t.pipeline_runs), rows[start : start + 2000])


def server_ms(client: Any, path: str, requests: int, **kwargs: Any) -> dict[str, float]:
    """Median and p95 of the server time of ``requests`` GETs of ``path``."""
    for _ in range(3):
        client.get(path, **kwargs).raise_for_status()
    times = []
    for _ in range(requests):
        response = client.get(path, **kwargs)
        response.raise_for_status()
        match = re.search(r"app;dur=([0-9.]+)", response.headers["server-timing"])
        assert match is not None
        times.append(float(match.group(1)))
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--store-url", help="Default: SQLite in a temp project.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mlzen-server-bench-"))
    (root / ".mlzen").mkdir()
    os.environ["MLZEN_PROJECT_ROOT"] = str(root)
    os.environ.pop("MLZEN_STACK", None)
    if args.store_url:
        from sqlalchemy import create_engine, text

        engine = create_engine(args.store_url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    import httpx

    from mlzen.server import auth
    from mlzen.server.app import create_app
    from mlzen.server.serve import uvicorn_server

    app = create_app(args.store_url)
    store = app.state.store
    print(f"filling the store with {args.runs} runs ...", file=sys.stderr)
    populate(store, args.runs)
    auth.create_user(store, "bench", "bench-password", "viewer")
    key = auth.create_api_key(store, "bench")

    server = uvicorn_server(app, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    headers = {"Authorization": f"Bearer {key}"}
    paths = {
        "runs_api_first_page": "/api/v1/runs",
        "runs_api_last_page": f"/api/v1/runs?offset={max(args.runs - 50, 0)}",
        "runs_api_by_status": "/api/v1/runs?status=failed",
        "runs_api_by_pipeline": "/api/v1/runs?pipeline=training&limit=100",
        "runs_page": "/runs",
    }
    figures: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for name, path in paths.items():
                print(f"measuring {path} ...", file=sys.stderr)
                figures[name] = server_ms(client, path, args.requests)
    finally:
        server.should_exit = True
        thread.join(timeout=30)

    if args.json:
        print(json.dumps(figures))
        return
    print(f"server time with {args.runs} runs (ms, {args.requests} requests each)")
    print(f"{'request':<24}{'median':>9}{'p95':>9}  target")
    for name, figure in figures.items():
        verdict = "ok" if figure["p95"] < TARGET_MS else "MISSED"
        print(
            f"{name:<24}{figure['median']:>9.2f}{figure['p95']:>9.2f}  "
            f"< {TARGET_MS:.0f} ({verdict})"
        )


if __name__ == "__main__":
    main()
