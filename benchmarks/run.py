"""mlzen's benchmark suite: one command, every figure the core issue asks for.

    python benchmarks/run.py          (or: make bench)

Every measurement runs in a fresh Python process on a fresh project in a temp folder,
and speed is reported next to a baseline measured in the same run where there is one.
Nothing here is a test: it prints numbers and the targets they are held against.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

TARGETS = {
    "import_s": ("<", 0.15),
    "per_step_ms": ("<", 10.0),
    "fan_out_s": ("<", 1.3),
    "cached_rerun_s": ("<", 0.5),
    "artifact_ratio": ("<", 1.5),
    "chain_peak_rss_mib": ("<", 100.0),
    "big_run_rss_ratio": ("<=", 1.2),
    "fingerprint_60_helpers_us": ("<", 1000.0),
    "cli_help_s": ("<", 0.3),
    "cli_runs_list_10k_s": ("<", 0.3),
    "server_runs_api_10k_p95_ms": ("<", 100.0),
    "server_runs_page_10k_p95_ms": ("<", 100.0),
}

POPULATE = """
import sys
from datetime import timedelta
from sqlalchemy import insert
from mlzen.config import load_settings
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, new_id, utcnow

store = MetadataStore(load_settings().store_url)
now = utcnow()
pipeline_id = new_id()
rows = [
    dict(id=new_id(), name=f"bench-{i}", pipeline_id=pipeline_id, status="completed",
         spec={}, parameters={"i": i}, stack="local", code_version={}, environment={},
         created_at=now - timedelta(seconds=i), ended_at=now, heartbeat_at=now,
         lease_seconds=60.0)
    for i in range(int(sys.argv[1]))
]
with store.write() as connection:
    connection.execute(insert(t.pipelines).values(id=pipeline_id, name="bench", created_at=now))
    connection.execute(insert(t.pipeline_runs), rows)
"""

PRELUDE = textwrap.dedent(
    """
    import json, resource, sys, time
    from mlzen import pipeline, step

    def timed(fn, *args, **kwargs):
        start = time.perf_counter()
        fn(*args, **kwargs)
        return time.perf_counter() - start

    def peak_rss_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    @step
    def first(x: int = 0) -> int:
        return x

    @step
    def inc(x: int) -> int:
        return x + 1

    def chain_of(length, name):
        @pipeline(name=name)
        def chain():
            value = first()
            for _ in range(length - 1):
                value = inc(value)
        return chain
    """
)

SNIPPETS = {
    "import": """
import time
start = time.perf_counter()
from mlzen import pipeline, step  # what a pipeline module imports, not just the package
print(json.dumps({"import_s": time.perf_counter() - start}))
""",
    "overhead": """
one = chain_of(1, "one").with_options(enable_cache=False)
twenty = chain_of(20, "twenty").with_options(enable_cache=False)
one(); twenty()  # warm up: store creation, first imports
t1 = min(timed(one) for _ in range(5))
t20 = min(timed(twenty) for _ in range(5))
print(json.dumps({"one_step_s": t1, "twenty_steps_s": t20, "per_step_ms": (t20 - t1) / 19 * 1000}))
""",
    "fan_out": """
@step
def nap(x: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return x

@step
def join(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d

@pipeline(enable_cache=False)
def fan_out():
    start = first()
    join(*[nap(start) for _ in range(4)])

chain_of(1, "warm")()
print(json.dumps({"fan_out_s": timed(fan_out)}))
""",
    "cached": """
twenty = chain_of(20, "twenty")
twenty()
print(json.dumps({"cached_rerun_s": min(timed(twenty) for _ in range(3))}))
""",
    "chain_rss": """
chain_of(20, "twenty").with_options(enable_cache=False)()
print(json.dumps({"chain_peak_rss_mib": peak_rss_mib()}))
""",
    "fingerprint": """
# The code fingerprint taken for every step of every run, of a step calling a chain of 60
# project helpers: looked up afresh each time, so a redefined helper counts.
import os
lines = []
for i in range(60):
    callee = f"helper_{i + 1}(x)" if i < 59 else "x"
    lines += [f"def helper_{i}(x):", f"    return {callee} + {i}", ""]
lines += ["def big(x):", "    return helper_0(x)", ""]
with open(os.path.join(sys.argv[1], "many_helpers.py"), "w") as module:
    module.write("\\n".join(lines))
sys.path.insert(0, sys.argv[1])
import many_helpers
from mlzen.runtime.fingerprint import code_fingerprint

first = timed(code_fingerprint, many_helpers.big)
repeats = 2000
again = timed(lambda: [code_fingerprint(many_helpers.big) for _ in range(repeats)]) / repeats
print(json.dumps({"fingerprint_60_helpers_first_ms": first * 1000,
                  "fingerprint_60_helpers_us": again * 1e6}))
""",
    "big_pipeline": """
import numpy as np
array = np.random.default_rng(0).random(25_000_000)  # 200 MB of float64

@step
def produce() -> np.ndarray:
    return array

@step
def consume(values: np.ndarray) -> float:
    return float(values.sum())

@pipeline(enable_cache=False)
def big():
    consume(produce())

chain_of(1, "warm")()
seconds = timed(big)
print(json.dumps({"big_run_s": seconds, "big_run_peak_rss_mib": peak_rss_mib()}))
""",
    "big_baseline": """
import os, numpy as np
array = np.random.default_rng(0).random(25_000_000)
path = os.path.join(sys.argv[1], "baseline.npy")
start = time.perf_counter()
np.save(path, array)
loaded = np.load(path)
float(loaded.sum())
seconds = time.perf_counter() - start
print(json.dumps({"big_baseline_s": seconds, "big_baseline_peak_rss_mib": peak_rss_mib()}))
""",
}


def measure(name: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mlzen-bench-") as root:
        os.makedirs(os.path.join(root, ".mlzen"))
        code = SNIPPETS[name] if name == "import" else PRELUDE + SNIPPETS[name]
        if name == "import":
            code = "import json\n" + code
        env = {**os.environ, "MLZEN_PROJECT_ROOT": root}
        result = subprocess.run(
            [sys.executable, "-c", code, root],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"benchmark '{name}' failed:\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def time_cli(*args: str, runs: int = 10_000, repeat: int = 7) -> float:
    """Median wall time of `mlzen ARGS` as a fresh process, on a store with ``runs`` runs."""
    import time

    with tempfile.TemporaryDirectory(prefix="mlzen-bench-") as root:
        os.makedirs(os.path.join(root, ".mlzen"))
        env = {**os.environ, "MLZEN_PROJECT_ROOT": root}
        subprocess.run([sys.executable, "-c", POPULATE, str(runs)], env=env, check=True)
        command = [os.path.join(os.path.dirname(sys.executable), "mlzen"), *args]
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def time_server() -> dict[str, float]:
    """Server time (p95, ms) of the runs API and the dashboard's runs page, 10,000 runs
    in the store (benchmarks/server_bench.py has the details)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server_bench.py")
    output = subprocess.run(
        [sys.executable, script, "--json"], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    api = max(figures[k]["p95"] for k in figures if k.startswith("runs_api"))
    return {
        "server_runs_api_10k_p95_ms": api,
        "server_runs_page_10k_p95_ms": figures["runs_page"]["p95"],
    }


def main() -> None:
    figures: dict[str, float] = {}
    figures["import_s"] = statistics.median(measure("import")["import_s"] for _ in range(7))
    for name in ("overhead", "fingerprint", "fan_out", "cached", "chain_rss"):
        print(f"measuring {name} ...", file=sys.stderr)
        figures.update(measure(name))
    print("measuring the 200 MB artifact run and its baseline ...", file=sys.stderr)
    big, base = [], []
    for _ in range(5):  # interleaved, so both see the same page-cache and writeback state
        big.append(measure("big_pipeline"))
        base.append(measure("big_baseline"))
    figures["big_run_s"] = min(b["big_run_s"] for b in big)
    figures["big_baseline_s"] = min(b["big_baseline_s"] for b in base)
    figures["artifact_ratio"] = figures["big_run_s"] / figures["big_baseline_s"]
    figures["big_run_peak_rss_mib"] = min(b["big_run_peak_rss_mib"] for b in big)
    figures["big_baseline_peak_rss_mib"] = min(b["big_baseline_peak_rss_mib"] for b in base)
    figures["big_run_rss_ratio"] = (
        figures["big_run_peak_rss_mib"] / figures["big_baseline_peak_rss_mib"]
    )
    print("measuring the CLI on a store with 10,000 runs ...", file=sys.stderr)
    figures["cli_help_s"] = time_cli("--help")
    figures["cli_runs_list_10k_s"] = time_cli("runs", "list")
    print("measuring the team server on a store with 10,000 runs ...", file=sys.stderr)
    figures.update(time_server())
    print(f"{'figure':<28}{'value':>12}  target")
    for key, value in figures.items():
        target = TARGETS.get(key)
        verdict = ""
        if target:
            op, bound = target
            ok = value < bound if op == "<" else value <= bound
            verdict = f"{op} {bound:g}  {'ok' if ok else 'MISSED'}"
        print(f"{key:<28}{value:>12.4f}  {verdict}")
    if "--json" in sys.argv:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
