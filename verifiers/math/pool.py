"""Long-lived worker processes that run untrusted-input computations under hard limits.

Each worker is a separate Python interpreter (``subprocess`` + a socket pair carrying
pickled messages), started with ``sys.executable``, so it works the same when the caller is
a thread, a Ray actor, a TRL trainer with CUDA initialised, a daemonic ``multiprocessing`` worker
(which may not start ``multiprocessing`` children) or a script without a ``__main__`` guard:
nothing is forked from the caller and ``__main__`` is never re-imported.

Limits, per job:

- wall clock: the parent waits with a deadline and SIGKILLs a worker that overruns
  (this also stops hangs inside C code, where an in-process ``signal.alarm`` cannot), then
  starts a replacement; the job is reported as ``timeout``. A job that finished past its limit
  (the worker measures its own run time) is a ``timeout`` too, even when a busy parent only reads
  its answer after the deadline;
- memory: the worker sets ``RLIMIT_AS`` to ``memory_mb`` before the job, so an allocation
  beyond it raises ``MemoryError`` (reported as ``memory``; the worker is then replaced);
- CPU: ``RLIMIT_CPU`` is set a little past the deadline, so a worker whose parent died
  mid-job still stops by itself.

The deadline of a job starts when a ready worker receives it, never while a replacement is
still importing. A pool is bound to the process that created it: after a ``fork`` the child
builds its own.

A worker boots with :func:`~starloop.verifiers.math.worker.serve` (the worker side, which
sets the limits above; importing it imports the package :mod:`starloop.verifiers.math` first:
pure Python, no SymPy), then imports its ``preload`` modules and runs their ``warm_up()`` (a replacement for a worker
that was killed mid-run runs ``warm_up_quick()`` where a module has one: a job may be waiting).
Here: :class:`WorkerPool` (its workers tracked by a ``_Roster``) and the process-wide pools.
"""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

STARTUP_TIMEOUT = 120.0

_BOOT = ("import sys; from starloop.verifiers.math.worker import serve; "
         "serve(int(sys.argv[1]), sys.argv[3:], quick=sys.argv[2] == 'quick')")


@dataclass(frozen=True)
class Job:
    """``module.function(*args)`` to run in a worker."""

    function: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Outcome:
    """What came back: status ``ok`` (with ``value``), ``timeout``, ``memory``, ``crashed`` or ``error``."""

    status: str
    value: Any = None
    detail: str = ""
    seconds: float = 0.0


class _Worker:
    """One worker process, as the pool sees it: the process and the pool's end of its socket pair."""

    def __init__(self, preload: Sequence[str], quick: bool = False):
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(child_sock.fileno()), "quick" if quick else "full", *preload],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C goes to the caller, not mid-job workers
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.ready = False
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def await_ready(self) -> None:
        """Wait (within ``STARTUP_TIMEOUT`` of the start) for the worker's "ready"."""
        if self.ready:
            return
        remaining = STARTUP_TIMEOUT - (time.monotonic() - self.started)
        if not self.conn.poll(max(remaining, 0.0)):
            self.kill()
            raise RuntimeError(f"verification worker did not start within {STARTUP_TIMEOUT:.0f}s")
        msg = self.conn.recv()
        if msg != "ready":
            self.kill()
            raise RuntimeError(f"verification worker failed to start: {msg}")
        self.ready = True

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.conn.close()
        except OSError:
            pass

    def close(self) -> None:
        """Ask an idle worker to exit (it sees EOF), killing it if it does not."""
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()


class _Roster:
    """A pool's workers: the idle ones, how many exist (idle or held by a run) and the cap.

    Thread-safe: :meth:`acquire` hands out idle workers, spawning new ones up to
    ``max_workers``, and waits while all are held; :meth:`release` takes them back.
    """

    def __init__(self, preload: tuple[str, ...], max_workers: int):
        self.preload = preload
        self.max_workers = max_workers
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.count = 0
        self.closed = False

    def spawn(self, quick: bool = False) -> _Worker:
        """A new worker (the caller accounts for it in ``count``); ``quick``: a short warm-up."""
        return _Worker(self.preload, quick)

    def acquire(self, n: int) -> list[_Worker]:
        """Between 1 and ``n`` workers (raising the cap to ``n`` if it is lower)."""
        with self.cond:
            if self.closed:
                raise RuntimeError("worker pool is shut down")
            self.max_workers = max(self.max_workers, n)
            while True:
                got: list[_Worker] = []
                while self.idle and len(got) < n:
                    w = self.idle.pop()
                    if w.alive():
                        got.append(w)
                    else:
                        self.count -= 1
                while len(got) < n and self.count < self.max_workers:
                    got.append(self.spawn())
                    self.count += 1
                if got:
                    return got
                self.cond.wait()

    def release(self, workers: Sequence[_Worker], dead: int = 0) -> None:
        with self.cond:
            for w in workers:
                if w.alive() and not self.closed:
                    self.idle.append(w)
                else:
                    self.count -= 1
                    if w.alive():
                        w.close()
            self.count -= dead
            self.cond.notify_all()

    def close(self) -> None:
        """Refuse further :meth:`acquire` calls and stop the idle workers."""
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
            self.count -= len(idle)
        for w in idle:
            w.close()


class WorkerPool:
    """A growing set of workers; :meth:`run` spreads jobs over up to ``workers`` of them."""

    def __init__(self, preload: Sequence[str] = (), max_workers: int | None = None):
        self.preload = tuple(preload)
        self.pid = os.getpid()
        self._roster = _Roster(self.preload, max_workers or max(1, os.cpu_count() or 1))

    @property
    def max_workers(self) -> int:
        """The most workers this pool has at a time (raised when a run asks for more)."""
        return self._roster.max_workers

    @max_workers.setter
    def max_workers(self, n: int) -> None:
        self._roster.max_workers = n

    def start(self, n: int = 1) -> None:
        """Start ``n`` workers now and wait until they are ready (optional: work starts them too)."""
        workers = self._roster.acquire(n)
        try:
            for w in workers:
                w.await_ready()
        finally:
            self._roster.release(workers)

    def shutdown(self) -> None:
        self._roster.close()

    # -- running jobs
    def run(self, jobs: Iterable[Job], *, timeout: float, memory_mb: int, workers: int = 1) -> list[Outcome]:
        """Run ``jobs`` on up to ``workers`` processes; outcomes are in input order.

        ``jobs`` may be a lazy iterator: it is drawn from while the workers are busy, so
        whatever work produces the jobs overlaps with the jobs themselves. No worker is
        started when there are no jobs.
        """
        source = iter(jobs)
        first = next(source, None)
        if first is None:
            return []
        job_list: list[Job] = [first]
        exhausted = False
        held = self._roster.acquire(max(1, workers))
        results: list[Outcome | None] = [None]
        pending = deque([0])
        free: list[_Worker] = []
        starting: list[_Worker] = []
        busy: dict[_Worker, tuple[int, float, float]] = {}  # worker -> (job index, start, deadline)
        limits = {"memory_mb": int(memory_mb), "cpu_seconds": int(timeout) + 2}
        try:
            for w in held:
                (free if w.ready else starting).append(w)
            while True:
                while free and pending:
                    w = free.pop()
                    idx = pending.popleft()
                    try:
                        w.conn.send((idx, job_list[idx].function, job_list[idx].args, limits))
                    except OSError:
                        pending.appendleft(idx)
                        w.kill()
                        starting.append(self._replace(held, w))
                        continue
                    now = time.monotonic()
                    busy[w] = (idx, now, now + timeout)
                if not exhausted and len(pending) < 4 * len(held):
                    job = next(source, None)  # produce the next job while the workers run
                    if job is None:
                        exhausted = True
                    else:
                        job_list.append(job)
                        results.append(None)
                        pending.append(len(job_list) - 1)
                    wait_for = 0.0
                elif not busy and not pending:
                    break
                else:
                    deadlines = [d for _, _, d in busy.values()]
                    wait_for = max(min(deadlines) - time.monotonic(), 0.0) if deadlines else STARTUP_TIMEOUT
                conns = {w.conn: w for w in itertools.chain(busy, starting)}
                if not conns:
                    continue
                for conn in wait(list(conns), timeout=wait_for):
                    w = conns[conn]
                    if w in starting:
                        starting.remove(w)
                        try:
                            msg = conn.recv()
                        except (EOFError, OSError):
                            msg = "exited during startup"
                        if msg == "ready":
                            w.ready = True
                            free.append(w)
                        else:
                            w.kill()
                            raise RuntimeError(f"verification worker failed to start: {msg}")
                        continue
                    idx, start, _ = busy.pop(w)
                    try:
                        reply = conn.recv()
                    except (EOFError, OSError):
                        code = w.proc.poll()
                        results[idx] = Outcome("crashed", detail=f"worker died (exit status {code})",
                                               seconds=time.monotonic() - start)
                        w.kill()
                        starting.append(self._replace(held, w))
                        continue
                    job_idx, outcome, ran = reply
                    assert job_idx == idx
                    status, value, detail = outcome
                    if status == "ok" and ran > timeout:  # finished past its limit; the parent was busy elsewhere
                        status, value, detail = "timeout", None, f"exceeded {timeout:g}s"
                    results[idx] = Outcome(status, value, detail, time.monotonic() - start)
                    if status == "memory" or not w.alive():
                        w.kill()
                        starting.append(self._replace(held, w))
                    else:
                        free.append(w)
                now = time.monotonic()
                for w, (idx, start, deadline) in list(busy.items()):
                    if now >= deadline:
                        busy.pop(w)
                        w.kill()
                        results[idx] = Outcome("timeout", detail=f"exceeded {timeout:g}s", seconds=now - start)
                        starting.append(self._replace(held, w))
                if pending and not free and not busy and starting:
                    if all(now - w.started > STARTUP_TIMEOUT for w in starting):
                        raise RuntimeError(f"verification worker did not start within {STARTUP_TIMEOUT:.0f}s")
        finally:
            for w in busy:  # interrupted mid-job: these workers' state is unknown
                w.kill()
            self._roster.release(held)
        return [r if r is not None else Outcome("error", detail="not run") for r in results]

    def _replace(self, held: list[_Worker], dead: _Worker) -> _Worker:
        fresh = self._roster.spawn(quick=True)  # a job may be waiting for it: warm up briefly
        held[held.index(dead)] = fresh
        return fresh


# --------------------------------------------------------------------------- shared pools

_POOLS: dict[tuple[str, ...], WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(preload: Sequence[str]) -> WorkerPool:
    """The process-wide pool for ``preload`` (created lazily, rebuilt after a fork)."""
    key = tuple(preload)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.pid != os.getpid():
            pool = _POOLS[key] = WorkerPool(preload)
        return pool


def shutdown_shared_pool(preload: Sequence[str]) -> None:
    """Stop the process-wide pool for ``preload``; the next :func:`shared_pool` starts afresh."""
    with _POOLS_LOCK:
        pool = _POOLS.pop(tuple(preload), None)
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()


@atexit.register
def _shutdown_all() -> None:
    for pool in list(_POOLS.values()):
        if pool.pid == os.getpid():
            pool.shutdown()
