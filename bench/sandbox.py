"""Sandbox throughput and latency: trivial programs through the warm pool vs process-per-program.

Three ways to run ``print(1 + 1)``, each driven by ``--workers`` closed-loop client threads:

* ``sandbox (warm pool)``: ``starloop.sandbox`` with full isolation (a fork of a warm zygote
  inside bubblewrap per program, plus the program's namespaces, uid, rlimits and seccomp);
* ``subprocess (no isolation)``: a fresh ``python -c`` per program, the naive baseline;
* ``bwrap per program``: a fresh bubblewrap sandbox and interpreter per program (no warm pool).

Each is measured ``--repeats`` times; the table shows medians over repeats of executions per
second and of the p50/p99 latency (timings on shared machines are noisy). Results go to
``bench/results/sandbox.json``::

    python bench/sandbox.py [--workers 2] [--repeats 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from starloop.sandbox import Limits, Program, SandboxPool, select_backend
from starloop.sandbox.backend import bwrap_argv, default_python

SOURCE = "print(1 + 1)"
RESULTS = Path(__file__).resolve().parent / "results" / "sandbox.json"


def closed_loop(run_one: Callable[[], bool], workers: int, seconds: float) -> dict:
    """``workers`` threads calling ``run_one`` back to back for ``seconds``; latencies in ms."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        mine, bad = [], 0
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            ok = run_one()
            mine.append((time.perf_counter() - t) * 1000)
            bad += not ok
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "executions": len(latencies),
        "failures": failures[0],
        "execs_per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def measure(name: str, run_one: Callable[[], bool], workers: int, repeats: int, seconds: float) -> dict:
    closed_loop(run_one, workers, min(1.0, seconds))  # warm-up
    runs = [closed_loop(run_one, workers, seconds) for _ in range(repeats)]
    summary = {key: statistics.median(r[key] for r in runs) for key in ("execs_per_s", "p50_ms", "p99_ms")}
    summary["failures"] = sum(r["failures"] for r in runs)
    print(f"  {name}: {summary['execs_per_s']:.0f} execs/s (runs: "
          + ", ".join(f"{r['execs_per_s']:.0f}" for r in runs) + ")", flush=True)
    return {"name": name, **summary, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    backend = select_backend()
    python = default_python()
    load_before = os.getloadavg()
    print(f"backend: {backend.describe()}\nworkers: {args.workers}, repeats: {args.repeats} x {args.seconds:g} s, "
          f"load average before: {load_before[0]:.2f}", flush=True)
    rows = []

    limits = Limits(wall_s=10, allow_unisolated=False)
    with SandboxPool(args.workers) as pool:
        program = Program(SOURCE)
        pool.run_many([program] * args.workers, limits)  # start the workers
        rows.append(measure("sandbox (warm pool)", lambda: pool.run(program, limits).stdout == "2\n",
                            args.workers, args.repeats, args.seconds))

    def subprocess_one() -> bool:
        out = subprocess.run([python, "-c", SOURCE], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return out.stdout == "2\n"

    rows.append(measure("subprocess (no isolation)", subprocess_one, args.workers, args.repeats, args.seconds))

    if backend.isolated:
        argv = bwrap_argv(python, root=backend.root) + ["--", python, "-I", "-c", SOURCE]

        def bwrap_one() -> bool:
            out = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            return out.stdout == "2\n"

        rows.append(measure("bwrap per program", bwrap_one, args.workers, args.repeats, args.seconds))

    load_after = os.getloadavg()
    print()
    print(f"{'method':28s} {'execs/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'failures':>9s}")
    for r in rows:
        print(f"{r['name']:28s} {r['execs_per_s']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['failures']:9d}")
    print(f"(medians of {args.repeats} runs; {args.workers} workers; {os.cpu_count()} CPUs; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "sandbox",
        "program": SOURCE,
        "workers": args.workers,
        "repeats": args.repeats,
        "seconds_per_run": args.seconds,
        "backend": backend.name,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
