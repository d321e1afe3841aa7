"""The Ray orchestrator next to the local one: fan-out wall time and per-step overhead.

    python benchmarks/ray_bench.py [--repeats 5] [--num-cpus 2]

Starts its own Ray cluster in this process (``ray.init(num_cpus=2)`` by default, no
dashboard) and a throw-away project in a temp folder, then measures, on the local
orchestrator (threads) and on Ray, with caching off and after a warm-up:

- the 4-way fan-out: a source, four 1-second sleeping steps, a join; on Ray once with
  the default request of one CPU per step (so at most ``num_cpus`` run at once) and once
  with ``resources={"cpus": 0.5}`` (all four at once);
- the per-step overhead: (20-step trivial chain - 1-step chain) / 19.

Figures are medians over ``--repeats`` runs. Ray keeps about ``num_cpus`` idle worker
processes: a fan-out wider than that may wait for new ones to start (about a second
each on a small machine), so the 0.5-CPU figure varies more than the others. Nothing
here is a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlzen import Client, pipeline, step
from mlzen.config import load_settings
from mlzen.stack import Stack


@step
def first(x: int = 0) -> int:
    return x


@step
def inc(x: int) -> int:
    return x + 1


@step
def sleepy(x: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return x + 1


@step
def join(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d


def chain_of(length: int) -> Any:
    @pipeline(name=f"chain_{length}", enable_cache=False)
    def chain() -> None:
        value = first()
        for _ in range(length - 1):
            value = inc(value)

    return chain


@pipeline(enable_cache=False)
def fan_out() -> None:
    start = first()
    join(*[sleepy(start) for _ in range(4)])


def timed(stack: Stack, built: tuple[Any, Any]) -> float:
    started = time.perf_counter()
    run = Client(stack).run_pipeline(*built)
    elapsed = time.perf_counter() - started
    assert run.status == "completed", run.status
    return elapsed


def median_time(stack: Stack, pipeline_: Any, repeats: int) -> float:
    timed(stack, pipeline_.build())  # warm-up: workers started, modules imported
    return statistics.median(timed(stack, pipeline_.build()) for _ in range(repeats))


def measure(stack: Stack, repeats: int, fan_out_pipeline: Any = fan_out) -> dict[str, float]:
    one, twenty = chain_of(1), chain_of(20)
    chain_1 = median_time(stack, one, repeats)
    chain_20 = median_time(stack, twenty, repeats)
    return {
        "fan_out_s": median_time(stack, fan_out_pipeline, repeats),
        "chain_1_s": chain_1,
        "chain_20_s": chain_20,
        "per_step_ms": (chain_20 - chain_1) / 19 * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()

    project = Path(tempfile.mkdtemp(prefix="mlzen-ray-bench-"))
    (project / ".mlzen").mkdir()
    os.environ["MLZEN_PROJECT_ROOT"] = str(project)
    os.environ["MLZEN_PROGRESS"] = "0"
    # A new local cluster otherwise writes ~/.ray/auth_token, which switches token
    # authentication on for every later `ray start` on this machine.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    from mlzen.orchestrators.ray import RayOrchestrator

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        settings = load_settings()
        local = Stack(settings)
        on_ray = Stack(settings, "ray", orchestrator=RayOrchestrator())
        half_cpu = fan_out.with_options(settings={"resources": {"cpus": 0.5}})
        figures = {
            "local (threads)": measure(local, args.repeats),
            f"ray, 1 CPU/step ({args.num_cpus} CPUs)": measure(on_ray, args.repeats),
            "ray, fan-out at 0.5 CPU/step": {
                "fan_out_s": median_time(on_ray, half_cpu, args.repeats)
            },
        }
    finally:
        ray.shutdown()
        shutil.rmtree(project, ignore_errors=True)

    print(f"python {' '.join(sys.argv)}")
    print(
        f"Ray {ray.__version__}: in-process cluster, ray.init(num_cpus={args.num_cpus}); "
        f"{os.cpu_count()} cores on this machine; medians of {args.repeats} runs, caching off"
    )
    print(f"{'':34} {'4x1s fan-out':>13} {'1-step':>9} {'20-step':>9} {'per step':>10}")
    for label, row in figures.items():
        cells = [
            f"{row['fan_out_s']:>12.2f}s",
            f"{row['chain_1_s']:>8.3f}s" if "chain_1_s" in row else f"{'':>9}",
            f"{row['chain_20_s']:>8.3f}s" if "chain_20_s" in row else f"{'':>9}",
            f"{row['per_step_ms']:>7.1f} ms" if "per_step_ms" in row else "",
        ]
        print(f"{label:34} {' '.join(cells)}")


if __name__ == "__main__":
    main()
