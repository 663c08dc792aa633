"""The warm worker pool: long-lived zygotes inside the isolation layer, one per worker.

Each worker is one bubblewrap sandbox whose zygote forks each program (a fork, not a new
interpreter in new namespaces: that is what makes isolated runs cheap). One host thread per
worker feeds it jobs from a shared queue; a worker that dies or stops answering is killed and
restarted, and the run it had becomes an ``error`` result.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import os
import queue
import random
import select
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import starloop.sandbox.backend as _backend
from starloop.sandbox._zygote import split_tests
from starloop.sandbox.core import ExecResult, Limits, Program, SandboxUnavailable

log = logging.getLogger(__name__)

_HDR = struct.Struct("!I")
_START_TIMEOUT_S = 60.0
_HOST_GRACE_S = 10.0  # on top of the zygote's own deadline (wall + 3 s)
_MAX_RESULT = 1 << 30  # a sanity bound on frames from the zygote (outputs are capped well below)

# each worker runs its programs under its own uid (root mode); a random range per host process,
# so that pools of several processes on one machine do not share uids (RLIMIT_NPROC is per uid)
_UID_BASE = 100_000 + random.SystemRandom().randrange(1 << 20) * 1024
_slots = itertools.count()


def _frame(obj) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return _HDR.pack(len(data)) + data


class _WorkerDied(Exception):
    pass


class _Worker:
    """One zygote process and the host thread that talks to it."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.slot = next(_slots)
        self.uid = _UID_BASE + self.slot % 1024
        self.proc: subprocess.Popen | None = None
        self.buf = bytearray()
        self.thread = threading.Thread(target=self._loop, name=f"sandbox-worker-{self.slot}", daemon=True)
        self.thread.start()

    # -- process

    def _start(self) -> None:
        # bwrap --die-with-parent ties the sandbox to the thread that starts it: start it here, in
        # the worker's own long-lived thread
        argv = self.pool.backend.argv(self.uid)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     close_fds=True, start_new_session=True)
        self.buf.clear()
        threading.Thread(target=self._drain_stderr, args=(self.proc,), daemon=True).start()
        hello = self._read(time.monotonic() + _START_TIMEOUT_S)
        if not isinstance(hello, dict) or hello.get("t") != "hello":
            raise _WorkerDied(f"unexpected greeting {hello!r}")

    @staticmethod
    def _drain_stderr(proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            log.warning("sandbox worker %d: %s", proc.pid, line.decode(errors="replace").rstrip())

    def stop(self, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if kill:
                proc.kill()
            else:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def _read(self, deadline: float):
        fd = self.proc.stdout.fileno()
        while True:
            if len(self.buf) >= 4:
                n = _HDR.unpack_from(self.buf)[0]
                if n > _MAX_RESULT:
                    raise _WorkerDied("oversized frame")
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return json.loads(body)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _WorkerDied("no answer before the deadline")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise _WorkerDied(f"worker exited (status {self.proc.poll()})")
                self.buf += chunk

    # -- jobs

    def _loop(self) -> None:
        while True:
            item = self.pool._queue.get()
            if item is None:
                self.stop()
                return
            program, limits, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = self._execute(program, limits)
            except BaseException as exc:  # never leave a future unresolved
                result = ExecResult("error", detail=f"sandbox: {type(exc).__name__}: {exc}",
                                    backend=self.pool.backend.name)
            future.set_result(result)

    def _execute(self, program: Program, limits: Limits) -> ExecResult:
        name = self.pool.backend.name
        job_id = f"{self.slot}-{time.monotonic_ns()}"
        has_tests = program.tests is not None
        frame_a = {"id": job_id, "source": program.source, "stdin": program.stdin, "has_tests": has_tests,
                   "limits": limits.to_wire()}
        # the tests travel in a second frame that only the run's evaluator reads (see _zygote)
        data = _frame(frame_a)
        if has_tests:
            data += _frame({"tests": program.tests, "entry_point": program.entry_point})
        for attempt in (1, 2):
            try:
                if self.proc is None or self.proc.poll() is not None:
                    self.stop(kill=True)
                    self._start()
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (_WorkerDied, OSError, ValueError) as exc:  # the job never reached a zygote: retry once
                self.stop(kill=True)
                if attempt == 2:
                    log.error("sandbox worker could not start: %s", exc)
                    return ExecResult("error", detail=f"sandbox worker could not start: {exc}", backend=name)
                continue
            try:
                row = self._read(time.monotonic() + limits.wall_s + _HOST_GRACE_S)
                if not isinstance(row, dict) or row.get("id") != job_id:
                    raise _WorkerDied("answer for another job")
                return ExecResult.from_wire(row, name, _labels(program))
            except (_WorkerDied, OSError, ValueError) as exc:  # not retried: the job may be what broke it
                self.stop(kill=True)
                log.error("sandbox worker failed: %s", exc)
                return ExecResult("error", detail=f"sandbox worker failed: {exc}", backend=name)
        raise AssertionError("unreachable")


def _labels(program: Program) -> list[tuple[str, str]] | None:
    """(kind, source) of each unit of the program's tests, as the evaluator splits them."""
    if program.tests is None:
        return None
    try:
        units = split_tests(program.tests, program.entry_point)
    except (SyntaxError, ValueError):
        return None
    out = []
    for kind, node in units:
        if kind == "bind":
            out.append((kind, "candidate"))
        elif isinstance(node, ast.Module):
            out.append((kind, "tests"))
        else:
            text = ast.get_source_segment(program.tests, node) or type(node).__name__
            text = " ".join(text.split())
            out.append((kind, text if len(text) <= 200 else text[:200] + "..."))
    return out


class SandboxPool:
    """A pool of warm sandbox workers.

    ``submit`` is thread-safe; ``run_many`` keeps order and runs at most ``workers`` programs at
    a time. The isolation backend is probed on first use and logged.
    """

    def __init__(self, workers: int = 1, *, python: str | None = None, ro_binds: Sequence[str] = ()) -> None:
        self._python = python
        self._ro_binds = tuple(ro_binds)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._backend: _backend.Backend | None = None
        self._closed = False
        self._target = max(1, int(workers))

    # -- backend

    @property
    def backend(self) -> _backend.Backend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = select_backend(self._python, self._ro_binds)
        return self._backend

    @property
    def isolated(self) -> bool:
        return self.backend.isolated

    @property
    def size(self) -> int:
        return max(self._target, len(self._workers))

    def ensure_workers(self, n: int) -> None:
        with self._lock:
            self._target = max(self._target, n)

    def _spawn(self) -> None:
        with self._lock:
            while len(self._workers) < self._target:
                self._workers.append(_Worker(self))

    # -- running

    def submit(self, program: Program | str, limits: Limits | None = None) -> Future:
        """Queue one program; the future's result is its :class:`ExecResult`."""
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        program = Program(program) if isinstance(program, str) else program
        limits = limits or Limits()
        if not self.backend.isolated and not limits.allow_unisolated:
            raise SandboxUnavailable(_UNAVAILABLE)
        self._spawn()
        future: Future = Future()
        self._queue.put((program, limits, future))
        return future

    def run(self, program: Program | str, limits: Limits | None = None) -> ExecResult:
        return self.submit(program, limits).result()

    def run_many(self, programs: Sequence[Program | str], limits: Limits | None = None, *,
                 workers: int | None = None) -> list[ExecResult]:
        """Run ``programs`` in parallel (at most ``workers`` at once); results in input order."""
        n = max(1, workers or self.size)
        self.ensure_workers(n)
        window = threading.BoundedSemaphore(n)
        futures = []
        for program in programs:
            window.acquire()
            future = self.submit(program, limits)
            future.add_done_callback(lambda _f: window.release())
            futures.append(future)
        return [f.result() for f in futures]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        for w in workers:
            w.thread.join(timeout=10)
            w.stop(kill=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_UNAVAILABLE = (
    "no sandbox backend works on this machine (install bubblewrap: `apt-get install -y bubblewrap`), "
    "and running untrusted code without isolation was not allowed; pass Limits(allow_unisolated=True) "
    "(or the verifier's allow_unisolated option) to run it anyway, with rlimits only"
)

_selected: dict[tuple, _backend.Backend] = {}
_selected_lock = threading.Lock()


def select_backend(python: str | None = None, ro_binds: tuple[str, ...] = ()) -> _backend.Backend:
    """The first backend whose probe run works, else ``none``; the choice is logged once."""
    key = (python, tuple(ro_binds))
    with _selected_lock:
        if key in _selected:
            return _selected[key]
        chosen = None
        for cand in _backend.candidates(python, tuple(ro_binds)):
            problem = probe(cand)
            if problem is None:
                chosen = cand
                break
            log.warning("sandbox backend %s does not work here: %s", cand.name, problem)
        if chosen is None:
            chosen = _backend.unisolated(python)
            log.warning("sandbox: no isolation backend available; runs are refused unless allow_unisolated=True")
        else:
            log.info("sandbox backend: %s", chosen.describe())
        _selected[key] = chosen
        return chosen


def probe(cand: _backend.Backend) -> str | None:
    """Start one zygote of ``cand`` and run a trivial program; None if all went well."""
    pool = SandboxPool(1)
    pool._backend = cand
    try:
        res = pool.run(Program("print('ok')"), Limits(wall_s=20, allow_unisolated=True))
    except Exception as exc:  # any failure means: not this backend
        return f"{type(exc).__name__}: {exc}"
    finally:
        pool.close()
    if res.status != "passed" or res.stdout != "ok\n":
        return f"probe run: {res.status} {res.detail} {res.stderr[-500:]}".strip()
    return None
