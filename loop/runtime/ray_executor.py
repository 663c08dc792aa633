"""Sampler replicas across the nodes of a Ray cluster: :class:`RayExecutor` is an executor of the
child-process runner (``starloop.loop.runtime.processes``), chosen with ``runtime.executor: ray``.

Each job becomes one Ray task; Ray's scheduler places it (``SPREAD`` over the nodes, reserving the
job's GPUs, ``ChildJob.gpus``, when the cluster has GPUs and one CPU otherwise), and the task starts the
job's command on its node, waits for it and returns its exit status. Nothing else changes: the job's
spec, result, traceback, log and shard files are paths on a filesystem every node sees (the run
directory, as under Slurm), so the sharded sampler's guarantees hold as they do on one machine (each
shard written when its replica ends, merged in problem order, a failed replica retried, a rerun
sampling only the missing shards).

The command runs with the driver's environment and working directory, as ``srun`` passes them, except
for the accelerator variables (``CUDA_VISIBLE_DEVICES`` ...), which are the ones Ray set for the task on
its node. Each log gets a header naming the node (``=== TIME NAME on node ID (IP, HOST): COMMAND``).
Killing a handle cancels its task, which kills the command's process group; Ray does not retry a task
(``max_retries=0``): the sharded sampler retries failed shards itself.

Ray is imported only when an executor connects (``pip install 'starloop[ray]'``).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from typing import Any

from starloop.loop.config import RuntimeConfig
from starloop.loop.errors import ConfigError
from starloop.loop.runtime.processes import LOCAL, ChildJob, Executor

log = logging.getLogger(__name__)

DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
"""Set per task by Ray on its node: never copied from the driver."""
FAILED = -1
"""The exit status of a job whose task Ray could not run to its end (cancelled, its worker or node lost)."""


def executor_for(runtime: RuntimeConfig) -> Executor:
    """The executor ``runtime.executor`` names: this machine's, or a :class:`RayExecutor` connected now to
    ``runtime.ray_address`` (else ``$RAY_ADDRESS``, else ``auto``), so a wrong address fails before any work."""
    if runtime.executor == "local":
        return LOCAL
    executor = RayExecutor(runtime.ray_address or os.environ.get("RAY_ADDRESS") or "auto")
    executor.connect()
    return executor


def probe(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`ConfigError` unless something accepts connections at ``HOST:PORT``: ``ray.init`` would
    retry an address without a cluster for minutes."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"runtime.ray_address={address}: no Ray cluster answers there ({exc}); start one with "
                          f"`ray start --head --port PORT` (README: GPUs and nodes)") from None


class RayExecutor:
    """Start each job as a Ray task on a node of the cluster at ``address`` (``HOST:PORT`` of its head, or
    ``auto``: the cluster ``ray start`` started on this machine)."""

    remote = True

    def __init__(self, address: str, *, cpus: float = 1.0):
        self.address, self.cpus = address, cpus
        self._task: Any = None
        self._gpus_per_node = 0.0

    def connect(self) -> None:
        """Join the cluster as a driver (once per process); :class:`ConfigError` if there is none."""
        try:
            import ray  # heavy: deferred
        except ImportError:
            raise ConfigError("runtime.executor=ray: Ray is not installed (pip install 'starloop[ray]')") from None
        if not ray.is_initialized():
            if self.address != "auto":
                probe(self.address)
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, namespace="starloop")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"runtime.ray_address={self.address}: cannot join a Ray cluster ({first})") from None
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._gpus_per_node = max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0)
        self._task = ray.remote(run_on_node)
        log.info("Ray cluster at %s: %d node(s), %s GPU(s) on the largest", self.address, len(nodes),
                 int(self._gpus_per_node))

    def start(self, job: ChildJob) -> RayHandle:
        if self._task is None:
            self.connect()
        gpus = job.gpus if self._gpus_per_node > 0 else 0
        if gpus > self._gpus_per_node:
            raise ConfigError(f"sampling.tensor_parallel_size={gpus}: no node of the Ray cluster has {gpus} GPUs "
                              f"(the largest has {int(self._gpus_per_node)})")
        env = {**os.environ, **job.env, "PYTHONUNBUFFERED": "1"}
        ref = self._task.options(num_cpus=self.cpus, num_gpus=gpus, scheduling_strategy="SPREAD", max_retries=0,
                                 name=f"starloop:{job.name}").remote(
            job.argv(), env, sorted(job.env), os.getcwd(), str(job.log_file) if job.log else None, job.name)
        return RayHandle(ref, job)


class RayHandle:
    """A job running as a Ray task: ``poll``/``wait`` give its command's exit status, ``kill`` ends it."""

    def __init__(self, ref: Any, job: ChildJob):
        self.ref, self.job = ref, job
        self._code: int | None = None

    def poll(self) -> int | None:
        import ray  # heavy: deferred

        if self._code is None and ray.wait([self.ref], timeout=0)[0]:
            self._code = self._result()
        return self._code

    def wait(self) -> int:
        if self._code is None:
            self._code = self._result()
        return self._code

    def kill(self) -> None:
        """Cancel the task (it kills its command's process group); force it after 10 s."""
        import ray  # heavy: deferred

        ray.cancel(self.ref)
        if not ray.wait([self.ref], timeout=10)[0]:
            ray.cancel(self.ref, force=True)

    def _result(self) -> int:
        import ray  # heavy: deferred

        try:
            return int(ray.get(self.ref))
        except ray.exceptions.RayError as exc:
            why = f"ray: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            log.warning("%s: %s", self.job.name, why)
            if self.job.log:
                with self.job.log_file.open("a") as fh:
                    fh.write(why + "\n")
            return FAILED


def run_on_node(argv: list[str], env: dict[str, str], job_keys: list[str], cwd: str, log_path: str | None,
                name: str) -> int:
    """A Ray task's body, on the node Ray chose: run ``argv`` to its end and return its exit status.

    The accelerator variables are this node's (set by Ray for the task), unless the job set them itself
    (``job_keys``); an interruption (a cancelled task) kills the command's process group."""
    import ray  # heavy: deferred

    env = {k: v for k, v in env.items() if k not in DEVICE_VARS or k in job_keys}
    env.update({k: os.environ[k] for k in DEVICE_VARS if k in os.environ and k not in job_keys})
    out = open(log_path, "a") if log_path else None  # noqa: SIM115 - closed below, after the command ends
    try:
        if out is not None:
            where = f"{ray.get_runtime_context().get_node_id()} ({ray.util.get_node_ip_address()}, {socket.gethostname()})"
            out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {name} on node {where}: {shlex.join(argv)}\n")
            out.flush()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)
        try:
            while proc.poll() is None:  # a sleep loop, not wait(): a cancellation interrupts it
                time.sleep(0.2)
            return proc.returncode
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        if out is not None:
            out.close()
