"""What recording to a team server costs a run: per-step overhead, local store vs server.

    python benchmarks/remote_bench.py [--json]

Starts an mlzen server under uvicorn on 127.0.0.1 over a throw-away SQLite store, makes
an editor key, then times the same chains of 1 and 20 steps (caching off) in fresh
Python processes: once on a project's own SQLite store, once logged in to the server
(``MLZEN_SERVER_URL`` / ``MLZEN_API_KEY``). The per-step figure is
``(20-step run - 1-step run) / 19``, the best of 5, as ``benchmarks/run.py`` measures
it. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The same measurement as the main suite's.
from run import PRELUDE, SNIPPETS


def measure(env: dict[str, str]) -> dict[str, float]:
    """The overhead snippet of the main suite, in a fresh process with ``env``."""
    root = tempfile.mkdtemp(prefix="mlzen-remote-bench-project-")
    os.mkdir(os.path.join(root, ".mlzen"))
    script = PRELUDE + SNIPPETS["overhead"]
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "MLZEN_PROJECT_ROOT": root, "MLZEN_PROGRESS": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()

    server_root = Path(tempfile.mkdtemp(prefix="mlzen-remote-bench-server-"))
    (server_root / ".mlzen").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLZEN_")}
    os.environ.update({"MLZEN_PROJECT_ROOT": str(server_root)})

    from mlzen.server import auth
    from mlzen.server.app import create_app
    from mlzen.server.serve import uvicorn_server

    app = create_app(f"sqlite:///{server_root / 'server.db'}", project_root=server_root)
    auth.create_user(app.state.store, "bench", "bench-password", "editor")
    key = auth.create_api_key(app.state.store, "bench")
    server = uvicorn_server(app, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        print("measuring on the project's own store ...", file=sys.stderr)
        local = measure(env)
        print(f"measuring through the server at {url} ...", file=sys.stderr)
        remote = measure({**env, "MLZEN_SERVER_URL": url, "MLZEN_API_KEY": key})
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    figures = {
        "local_per_step_ms": local["per_step_ms"],
        "remote_per_step_ms": remote["per_step_ms"],
        "local_one_step_run_s": local["one_step_s"],
        "remote_one_step_run_s": remote["one_step_s"],
    }
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:24} {value:8.2f}")


if __name__ == "__main__":
    main()
