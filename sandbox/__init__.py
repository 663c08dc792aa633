"""starloop sandbox: run untrusted Python (model-written code) in isolation, with limits.

    run(program, limits) -> ExecResult
    run_many(programs, limits, workers=N) -> list[ExecResult]   # order kept, N at a time

A :class:`Program` is source, optional stdin, and optional assert-style ``tests``; the result's
``status`` is one of passed, failed, timeout, memory_limit, output_limit, killed, error.

Design
------
A worker is one bubblewrap sandbox (its own pid, network, ipc and uts namespaces, a read-only
view of the filesystem) holding a warm *zygote* interpreter, run as root inside with five
capabilities and never running untrusted code. Per run, the zygote mounts a fresh tmpfs and
forks the *program* process, which drops to the worker's unprivileged uid and runs the
solution; with tests, it then forks the *evaluator*, which runs them. When the program exits
(or is killed at a limit), the zygote kills every process left under that uid and unmounts
the tmpfs. Isolation costs a fork of a warm process, not a new interpreter in new namespaces.
Running as an ordinary user (``bwrap-rootless``) there is no uid to give away: each run gets a
pid namespace of its own instead, whose pid 1 is a minimal init (no signal handlers, not
dumpable) and the program its child; when the program ends the init exits, everything the
program started dies with the namespace, and its exit code or fatal signal reaches the zygote
unchanged, so statuses are those of uid mode.

What is isolated
  * Network: the worker has its own network namespace with only a loopback device; host
    listeners (127.0.0.1, ::1, Unix sockets on the host's filesystem, abstract sockets) are
    out of reach.
  * Filesystem: the root is an empty read-only tmpfs with read-only binds of /usr, the
    /lib* and /bin links, /etc/ld.so.cache and the interpreter's own folders (its packages
    importable, no .pth file run); nothing of /home, /root, /tmp, /work, /etc (passwords,
    keys) or the project exists inside. The only
    writable place is the run's tmpfs (working directory, /tmp and /dev/shm; ``disk_mb`` in
    all), empty at the start of each run and unmounted at its end.
  * Processes: the program runs under an unprivileged uid of its own (one per worker, so the
    zygote and the evaluator, root without capabilities, are out of its reach: no signals,
    no ptrace), with no capabilities, ``no_new_privs`` and a seccomp filter that denies
    namespaces, mounts, ptrace, bpf, io_uring, keyrings, System V IPC, message queues, signals
    to pid 1 and similar calls. Its /proc shows only its own processes (rootless: those of its
    pid namespace, the run's init included; the zygote and the evaluator are outside it). On
    return the whole process tree is gone: daemons, double forks, setsid and atexit spawns
    included (the zygote kills every process of that uid, in one ``kill(-1)`` pass the kernel
    makes atomic with respect to fork; rootless, the kernel kills the run's pid namespace).
  * Limits: wall clock (enforced by the zygote, backed by the host), CPU time, address space,
    open files, file size (rlimits), processes and threads (RLIMIT_NPROC, which holds because
    the program is not root), disk (tmpfs size), stdout/stderr bytes.
  * Environment: a fixed minimal environment (PATH, HOME, TMPDIR, LANG, PWD); stdin is the
    given text or empty; no host file descriptor is inherited.

Verdict integrity (programs with ``tests``)
  The tests never enter the program's process: of each job the zygote reads only the program
  before forking it; the evaluator, forked afterwards, reads the tests and runs them in its own
  process (a test suite's expected values are found nowhere in the program's memory). Names the tests take from the solution become stand-ins that forward
  calls to the program over a pipe; only plain data (numbers, strings, containers, ...) comes
  back, decoded by the evaluator into genuine built-in objects (a large value is streamed in
  chunks, never built as one message; up to the run's ``memory_mb`` of data, beyond which the
  test fails with ``ValueTooLarge`` and the run's status is ``memory_limit``), and every comparison and
  ``assert`` runs in the evaluator. So exiting early (``sys.exit(0)``, ``os._exit(0)``), raising
  ``SystemExit``, atexit or excepthook tricks, printing pass markers, writing result files,
  patching ``unittest`` or builtins, returning objects whose ``__eq__`` is always true: none
  can make a test pass. A test passes only if its assert held on values the program really
  returned. Builtin names (``len``, ``abs``...) are never taken from the solution (except the
  entry point), and a stdlib module used as ``math.isclose`` in the tests is the genuine
  module. The report the evaluator sends through the zygote (whose memory later programs
  inherit) carries pass/fail and error types only, no test text. Tests run one top-level
  ``assert`` at a time (or one assert of HumanEval's ``check`` body at a time), so a score can
  be fractional. For stdin/stdout tests the comparison is the caller's, on the host (see the
  code verifier).

What is not isolated
  * The kernel is shared: a kernel exploit escapes (seccomp narrows the surface only).
  * CPU time and memory are per process: a run's total memory is bounded by
    ``max_processes x memory_mb`` (no cgroup is used), and CPU time of children the program
    did not wait for is not counted.
  * Timing and host facts under /proc (cpuinfo, meminfo, uptime) are visible; the
    interpreter's installed packages are readable (read-only).
  * Test code is trusted: it runs in the evaluator (inside the sandbox, without network or
    capabilities, but not under the program's uid). Objects the tests hand to the program's
    functions are copies; in-place changes to list/dict/set arguments are copied back. Tests
    that compare objects of the program's own classes with ``==`` fail (equality of the
    program's objects is not taken on trust), as do tests reading what a function prints.
  * Without bubblewrap, runs are refused unless ``Limits(allow_unisolated=True)``; then only
    rlimits and a process group apply, and nothing above holds.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence

from starloop.sandbox.core import (
    STATUSES,
    CaseResult,
    ExecResult,
    Limits,
    Program,
    SandboxUnavailable,
    Status,
)
from starloop.sandbox.pool import SandboxPool, select_backend

__all__ = [
    "STATUSES",
    "CaseResult",
    "ExecResult",
    "Limits",
    "Program",
    "SandboxPool",
    "SandboxUnavailable",
    "Status",
    "default_pool",
    "run",
    "run_many",
    "select_backend",
]

_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool(workers: int = 1) -> SandboxPool:
    """The process-wide pool (created on first use, grown to ``workers``)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SandboxPool(workers)
        else:
            _default.ensure_workers(workers)
        return _default


def run(program: Program | str, limits: Limits | None = None) -> ExecResult:
    """Run one program in the sandbox and return its result."""
    return default_pool(1).run(program, limits)


def run_many(
    programs: Sequence[Program | str], limits: Limits | None = None, *, workers: int | None = None
) -> list[ExecResult]:
    """Run many programs, ``workers`` at a time (default: one per CPU core); results in input order."""
    n = max(1, workers or os.cpu_count() or 1)
    return default_pool(n).run_many(programs, limits, workers=n)


def _close_default() -> None:
    global _default
    pool, _default = _default, None
    if pool is not None:
        pool.close()


def _forget_default() -> None:
    # a forked child must not share the parent's workers (their threads did not survive the fork)
    global _default
    _default = None


atexit.register(_close_default)
os.register_at_fork(after_in_child=_forget_default)
