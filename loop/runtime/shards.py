"""Data-parallel sampling: one sampler replica per shard of the problems, each a fresh process.

``sampling.data_parallel_size`` replicas each sample a contiguous shard of the problems with
``sampling.tensor_parallel_size`` GPUs (``CUDA_VISIBLE_DEVICES`` set per replica; on CPU the
cores are split between replicas), through the child-process runner
(``starloop.loop.runtime.processes``): every replica is a fresh process, so all accelerator
memory is free again when it exits. With a remote executor (``runtime.executor: ray``) the replicas
run on the nodes of a cluster, which gives each its GPUs.

Each shard's samples are written to its part file (``<run dir>/shards/<digest>/shard-NN.jsonl``
in a run) as soon as that replica finishes; the folder is named by a digest of everything the
samples depend on (model files, sampling config, prompts, parameters, seeds), so a rerun of the
same call reuses the finished shards and samples only the missing ones. A failed replica is
retried ``retries`` times; if it still fails, :class:`ShardError` names it and its log while the
finished shards stay on disk. The merged result is the shards' samples in shard order: the same
order as an unsharded call.

Determinism: a shard's samples depend only on its problems and the seeds, never on the other
shards, when the sampler's output for a prompt depends only on (prompt, seed):

- transformers backend: every (prompt, sample index) row draws from its own random stream
  (``samplers.PerRowSampling``), and shards are cut at the backend's batch boundaries, so every
  batch is the batch an unsharded call computes: 1 or N replicas give the same samples, sampled
  or greedy.
- vLLM, greedy: the same, as long as vLLM's numerics do not depend on the batch a request lands
  in (true of the CPU build in our tests; vLLM on GPU is not batch-invariant by default).
- vLLM, sampled, on GPU: each request carries the call's seed (``SamplingParams(seed=...)``), so a
  prompt's samples do not depend on the shard, within the same batch-invariance caveat.
- vLLM, sampled, on CPU: the CPU engine takes no per-request seeds; it draws from one stream
  seeded by the run seed, so samples depend on which prompts share an engine. Sharded and
  unsharded runs are each reproducible, but not equal to each other.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from starloop.loop.config import ConfigError, SamplingConfig
from starloop.loop.fileio import write_bytes_atomic
from starloop.loop.records import Sample, SampleRequest, sample_from_row
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.processes import ChildJob, Executor, Outcome, run_jobs
from starloop.loop.runtime.rundir import Parts

log = logging.getLogger(__name__)


class FileProgress(tqdm):
    """A replica's progress bar, drawn nowhere: ``done total`` goes to ``progress_file`` (at most twice a
    second, and when it closes), which the parent's aggregate bar reads (:class:`ShardProgress`).

    Passed to a sampler as its tqdm class (vLLM's ``use_tqdm`` takes one); only bars made with a
    ``total`` and no iterable report, so vLLM's bar over adding requests does not."""

    def __init__(self, *args: Any, progress_file: str | Path, **kwargs: Any):
        self._report = Path(progress_file) if not args and kwargs.get("iterable") is None else None
        kwargs.update(file=open(os.devnull, "w"), disable=False, mininterval=0.5)  # noqa: SIM115 - closed in close()
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._report is not None and self.total:
            write_bytes_atomic(self._report, f"{self.n} {self.total}\n".encode())
        return True

    def close(self) -> None:
        fh = self.fp
        super().close()
        fh.close()


def progress_file(out: str | Path) -> Path:
    """Where the replica writing ``out`` reports its progress."""
    return Path(out).with_suffix(".progress")


def read_progress(path: Path) -> float:
    """The fraction done that a replica reported (0 before its first report)."""
    try:
        done, total = path.read_text().split()
        return min(1.0, float(done) / float(total)) if float(total) > 0 else 0.0
    except (OSError, ValueError):
        return 0.0


class ShardProgress:
    """One bar over all replicas of a sharded call, in problems: finished shards count whole, running
    ones by the fraction their replica reports."""

    def __init__(self, sizes: list[int], files: list[Path], done: list[bool], *, enabled: bool, replicas: int):
        self.sizes, self.files, self.done = sizes, files, done
        self.bar = tqdm(total=sum(sizes), desc=f"sample ({replicas} replicas)", unit="problem", disable=not enabled)
        self.update()

    def update(self) -> None:
        n = sum(size if done else int(size * read_progress(f))
                for size, f, done in zip(self.sizes, self.files, self.done, strict=True))
        if n != self.bar.n:
            self.bar.n = n
            self.bar.refresh()

    def finish(self, index: int, ok: bool) -> None:
        self.done[index] = ok
        self.files[index].unlink(missing_ok=True)
        self.update()

    def close(self) -> None:
        self.bar.close()


class ShardError(RuntimeError):
    """One or more replicas failed (after retries); the finished shards are kept on disk."""


def shard_bounds(n: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` ranges of ``n`` items over ``shards`` replicas.

    Sizes are rounded up to a multiple of ``align`` (the sampler's batch size), so a shard holds
    whole batches; a trailing range may be empty when there are few items.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    size = -(-n // shards)
    size = max(align, -(-size // align) * align)
    return [(min(i * size, n), min((i + 1) * size, n)) for i in range(shards)]


def replica_env(replicas: int, tp: int) -> list[dict[str, str]]:
    """Environment additions per replica: its GPUs (``CUDA_VISIBLE_DEVICES``), or on CPU its cores."""
    import torch  # heavy: deferred

    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if len(ids) < replicas * tp:
            raise ConfigError(f"sampling.data_parallel_size={replicas} x sampling.tensor_parallel_size={tp} needs "
                              f"{replicas * tp} GPUs; {len(ids)} visible")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[r * tp:(r + 1) * tp])} for r in range(replicas)]
    threads = max(1, len(os.sched_getaffinity(0)) // replicas)
    return [{"OMP_NUM_THREADS": str(threads)} for _ in range(replicas)]


def _model_fingerprint(model: str) -> list[Any]:
    path = Path(model)
    if not path.is_dir():
        return [model]
    return [model, *sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.is_file())]


def _bounds(cfg: SamplingConfig, n: int) -> list[tuple[int, int]]:
    align = cfg.batch_size if cfg.backend == "transformers" else 1
    return [b for b in shard_bounds(n, cfg.data_parallel_size, align) if b[1] > b[0]]


def call_key(cfg: SamplingConfig, engine_seed: int, request: SampleRequest, shard_fn: Callable[..., Any],
             load: LoadOptions | None = None) -> dict:
    """Everything a sharded call's samples depend on (its parts folder is named by a digest of it)."""
    return {
        "load": dataclasses.asdict(load or LoadOptions()),
        "model": _model_fingerprint(request.model), "sampling": dataclasses.asdict(cfg), "engine_seed": engine_seed,
        "problems": [p.id for p in request.problems], "prompts": request.prompts,
        "params": dataclasses.asdict(request.params), "iteration": request.iteration, "hinted": request.hinted,
        "shard_fn": f"{shard_fn.__module__}.{shard_fn.__qualname__}", "bounds": _bounds(cfg, len(request.problems)),
    }


def _complete(parts: Parts, name: str, request: SampleRequest) -> str | None:
    """None if the shard's file holds ``n`` samples per problem in problem order, else why not."""
    ids = [r.get("problem_id") for r in parts.read(name)]
    want = [p.id for p in request.problems for _ in range(request.params.n)]
    if ids == want:
        return None
    bad = parts.discard(name)
    return (f"shard output has {len(ids)} samples not matching its {len(request.problems)} problems x "
            f"n={request.params.n}; moved to {bad.name}")


def sample_sharded(request: SampleRequest, cfg: SamplingConfig, engine_seed: int, parts: Parts,
                   shard_fn: Callable[..., Any], *, executor: Executor | None = None, retries: int = 1,
                   load: LoadOptions | None = None, progress: bool = False) -> list[Sample]:
    """Sample ``request`` on ``cfg.data_parallel_size`` replicas; merge the shards in problem order.

    Each replica runs ``shard_fn(cfg, engine_seed, shard_request, out_path, load)`` in a fresh process.
    Finished shards are kept in ``parts`` and reused by a rerun; raises :class:`ShardError` if a
    replica still fails after ``retries`` retries.
    """
    bounds = _bounds(cfg, len(request.problems))
    names = [f"shard-{i:02d}" for i in range(len(bounds))]
    remote = executor is not None and executor.remote
    envs = [{} for _ in bounds] if remote else replica_env(len(bounds), cfg.tensor_parallel_size)
    jobs = [ChildJob(shard_fn, (cfg, engine_seed, request.part(a, b), str(parts.path(name)), load), parts.dir, name,
                     env=envs[i], log=True, gpus=cfg.tensor_parallel_size)
            for i, (name, (a, b)) in enumerate(zip(names, bounds, strict=True))]
    pending = [i for i, name in enumerate(names) if not parts.done(name)]
    log.info("sampling %d problems on %d replicas (%d shard(s) already done) in %s", len(request.problems),
             len(bounds), len(bounds) - len(pending), parts.dir)
    errors: dict[int, str] = {}
    bar = ShardProgress([b - a for a, b in bounds], [progress_file(parts.path(n)) for n in names],
                        [i not in pending for i in range(len(bounds))], enabled=progress, replicas=len(bounds))
    try:
        for attempt in range(retries + 1):
            if not pending:
                break
            if attempt:
                log.warning("retrying shard(s) %s (attempt %d of %d)", pending, attempt + 1, retries + 1)
            pending = _attempt(pending, jobs, names, bounds, request, parts, executor, errors, bar)
    finally:
        bar.close()
    if pending:
        details = "; ".join(f"shard {i} (problems {bounds[i][0]}..{bounds[i][1] - 1}): {errors[i]} "
                            f"[log: {jobs[i].log_file}]" for i in pending)
        done = len(bounds) - len(pending)
        raise ShardError(f"{len(pending)} of {len(bounds)} sampling shard(s) failed after {retries + 1} attempt(s): "
                         f"{details}. {done} finished shard(s) are kept in {parts.dir}; rerun to sample only the rest.")
    return [sample_from_row(r) for name in names for r in parts.read(name)]


def _attempt(pending: list[int], jobs: list[ChildJob], names: list[str], bounds: list[tuple[int, int]],
             request: SampleRequest, parts: Parts, executor: Executor | None, errors: dict[int, str],
             bar: ShardProgress) -> list[int]:
    """Run the pending shards' replicas once; the shards that failed (their reasons go to ``errors``)."""
    outcomes: list[Outcome] = run_jobs([jobs[i] for i in pending], executor, monitor=bar.update)
    failed = []
    for i, out in zip(pending, outcomes, strict=True):
        a, b = bounds[i]
        why = _complete(parts, names[i], request.part(a, b)) if out.ok else out.error()
        bar.finish(i, why is None)
        if why is not None:
            errors[i] = why
            if out.ok:  # the process succeeded but its output is unusable: say so next to its log
                out.job.error.write_text(why + "\n")
            log.warning("shard %d failed (exit %d): %s", i, out.exit_code, why)
            failed.append(i)
    return failed
