"""The worker side of :mod:`~starloop.verifiers.math.pool`: what a worker process runs.

A worker is started by the pool as ``python -c`` with a one-line boot string that imports
this module (which imports the package :mod:`starloop.verifiers.math` first: pure Python,
no SymPy) and calls :func:`serve` with its end of the socket pair and its ``preload`` modules.
Before each job the worker sets its own limits: ``RLIMIT_AS`` to the job's ``memory_mb`` (an
allocation beyond it raises ``MemoryError``) and ``RLIMIT_CPU`` a little past the job's
deadline (so a worker whose parent died mid-job still stops by itself); after the job they
are lifted again.
"""

from __future__ import annotations

import importlib
import resource
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any


def _set_limits(memory_mb: int, cpu_seconds: int) -> None:
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        pass
    try:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(used.ru_utime + used.ru_stime) + 1
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = spent + max(cpu_seconds, 1)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


def _lift_limits() -> None:
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        try:
            _, hard = resource.getrlimit(which)
            resource.setrlimit(which, (hard, hard))
        except (ValueError, OSError):
            pass


def serve(fd: int, preload: Sequence[str] = (), quick: bool = False) -> None:
    """Worker main loop: receive (id, "module:function", args, limits), send (id, outcome).

    First each ``preload`` module is imported and its ``warm_up()`` run (``warm_up_quick()``
    instead, where it has one, when ``quick``)."""
    conn = Connection(fd)
    try:
        for name in preload:
            module = importlib.import_module(name)
            warm = (quick and getattr(module, "warm_up_quick", None)) or getattr(module, "warm_up", None)
            if warm is not None:
                warm()
    except BaseException as exc:  # report instead of dying silently
        try:
            conn.send(f"{type(exc).__name__}: {exc}")
        except OSError:
            pass
        return
    try:
        conn.send("ready")
    except OSError:  # the caller went away while this worker was starting
        return
    functions: dict[str, Any] = {}
    while True:
        try:
            job_id, function, args, limits = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        fn = functions.get(function)
        if fn is None:
            module_name, _, attr = function.partition(":")
            fn = functions[function] = getattr(importlib.import_module(module_name), attr)
        restart = False
        _set_limits(limits["memory_mb"], limits["cpu_seconds"])
        began = time.monotonic()
        try:
            outcome = ("ok", fn(*args), "")
        except MemoryError:
            outcome, restart = ("memory", None, f"exceeded {limits['memory_mb']} MB"), True
        except RecursionError:
            outcome = ("error", None, "recursion too deep")
        except Exception as exc:
            outcome = ("error", None, f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            _lift_limits()
        try:
            conn.send((job_id, outcome, time.monotonic() - began))
        except (OSError, MemoryError):
            return
        if restart:
            return
