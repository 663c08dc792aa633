"""Run functions in fresh processes: the one mechanism for every "run this in a fresh process"
need of the loop (a sampling phase that must give back accelerator memory when it ends, sampler
replicas over shards of the problems, the training phase under torchrun / accelerate / srun).

A :class:`ChildJob` is a top-level function and its arguments, pickled (the function by
reference) into ``<dir>/<name>.spec.pkl``. The child process,
``python -m starloop.loop.runtime.processes SPEC`` (directly, or behind a launcher such as
torchrun that starts it once per rank), calls the function and writes its return value to
``<name>.result.pkl`` atomically (rank 0 only); a failure writes the traceback to
``<name>.error``. With ``log=True`` the child's stdout and stderr go to ``<name>.log``, else to
the parent's terminal.

Where a child runs is the executor's business: :class:`LocalExecutor` starts it on this machine,
``ray_executor.RayExecutor`` on a node of a Ray cluster (``runtime.executor``). An executor implements
``start(job) -> handle``, the handle having ``wait() -> exit code``, ``poll()`` and ``kill()``; the
stages never see which one runs their jobs.
"""

from __future__ import annotations

import logging
import os
import pickle
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starloop.loop.fileio import write_bytes_atomic

log = logging.getLogger(__name__)

ENTRY = "starloop.loop.runtime.processes"


def python_command(entry: list[str]) -> list[str]:
    """The default command: this interpreter running the child entry."""
    return [sys.executable, *entry]


@dataclass
class ChildJob:
    fn: Callable[..., Any]
    """A module-level function (pickled by reference: the child imports it)."""
    args: tuple[Any, ...]
    dir: Path
    name: str
    env: dict[str, str] = field(default_factory=dict)
    """Environment additions for the child (e.g. its GPUs)."""
    command: Callable[[list[str]], list[str]] = python_command
    """Builds the command line from the child entry's argv (``-m ENTRY SPEC``): a launcher wraps it."""
    log: bool = False
    """Send the child's output to ``<name>.log`` instead of the terminal."""
    gpus: int = 0
    """GPUs the child needs: a remote executor reserves them on the node it picks (a local child's come from
    ``env``)."""

    def path(self, suffix: str) -> Path:
        return Path(self.dir) / f"{self.name}{suffix}"

    @property
    def spec(self) -> Path:
        return self.path(".spec.pkl")

    @property
    def result(self) -> Path:
        return self.path(".result.pkl")

    @property
    def error(self) -> Path:
        return self.path(".error")

    @property
    def log_file(self) -> Path:
        return self.path(".log")

    def argv(self) -> list[str]:
        return self.command(["-m", ENTRY, str(self.spec)])


class Handle(Protocol):
    def wait(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


class Executor(Protocol):
    remote: bool
    """Jobs may run on other machines: their files must be on a filesystem those see, and the executor, not
    the job's ``env``, gives each its devices (``ChildJob.gpus``)."""

    def start(self, job: ChildJob) -> Handle: ...


class LocalExecutor:
    """Start each job as a subprocess of this process."""

    remote = False

    def start(self, job: ChildJob) -> Handle:
        env = {**os.environ, **job.env, "PYTHONUNBUFFERED": "1"}
        if not job.log:
            return subprocess.Popen(job.argv(), env=env)
        with job.log_file.open("a") as fh:
            fh.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {job.name}: {' '.join(job.argv())}\n")
            fh.flush()
            return subprocess.Popen(job.argv(), env=env, stdout=fh, stderr=subprocess.STDOUT)


LOCAL = LocalExecutor()


class ChildFailed(RuntimeError):
    """A child process failed; the message has its last error line and where its log is."""


@dataclass
class Outcome:
    job: ChildJob
    exit_code: int
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.job.result.exists()

    def error(self) -> str:
        """The child's last error line (its traceback file, else its log)."""
        for path in (self.job.error, self.job.log_file):
            if path.exists():
                lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
                if lines:
                    return lines[-1].strip()
        return f"exit code {self.exit_code}, no error output"


def run_jobs(jobs: Sequence[ChildJob], executor: Executor | None = None,
             monitor: Callable[[], None] | None = None, interval: float = 0.5) -> list[Outcome]:
    """Start every job, wait for all, return their outcomes in job order. An interruption (or any
    error here) kills the children still running; what finished stays on disk. ``monitor`` is
    called every ``interval`` seconds while they run (an aggregate progress bar)."""
    executor = executor or LOCAL
    started: list[tuple[ChildJob, Handle]] = []
    try:
        for job in jobs:
            Path(job.dir).mkdir(parents=True, exist_ok=True)
            for stale in (job.result, job.error):
                stale.unlink(missing_ok=True)
            write_bytes_atomic(job.spec, pickle.dumps((job.fn, job.args)))
            started.append((job, executor.start(job)))
        if monitor is not None:
            while any(handle.poll() is None for _, handle in started):
                monitor()
                time.sleep(interval)
        outcomes = []
        for job, handle in started:
            out = Outcome(job, handle.wait())
            if out.ok:
                out.value = pickle.loads(job.result.read_bytes())
            outcomes.append(out)
        return outcomes
    finally:
        for _, handle in started:
            if handle.poll() is None:
                handle.kill()
                handle.wait()


def run_job(job: ChildJob, executor: Executor | None = None) -> Any:
    """Run one job in a fresh process and return its function's value; :class:`ChildFailed` if it fails."""
    (out,) = run_jobs([job], executor)
    if not out.ok:
        where = f" [log: {job.log_file}]" if job.log else ""
        raise ChildFailed(f"{job.name} failed in a child process ({shell_line(job.argv())}): {out.error()}{where}")
    return out.value


def shell_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def main(argv: list[str] | None = None) -> int:
    """Child entry: ``python -m starloop.loop.runtime.processes SPEC``."""
    argv = sys.argv[1:] if argv is None else argv
    spec = Path(argv[0])
    stem = spec.name[: -len(".spec.pkl")]
    rank = _rank()
    error = spec.with_name(f"{stem}.error" if rank == 0 else f"{stem}.rank{rank}.error")
    try:
        fn, args = pickle.loads(spec.read_bytes())
        value = fn(*args)
        if rank == 0:
            write_bytes_atomic(spec.with_name(f"{stem}.result.pkl"), pickle.dumps(value))
        _leave_process_group()
    except BaseException as exc:
        error.write_text(traceback.format_exc() + f"\n{type(exc).__name__}: {exc}\n")
        raise
    return 0


def _leave_process_group() -> None:
    """Ranks of a distributed job leave together (barrier, then destroy the process group): a rank that
    exits while another still tears its connections down can fail the whole launch at interpreter exit,
    after the work is done."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist  # heavy: deferred (torch is already loaded when a job used it)

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
