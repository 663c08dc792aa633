"""Data-parallel sampling: one sampler replica per shard of the problems, each in its own process.

``sampling.data_parallel_size`` replicas each run ``python -m starloop.loop.shard SPEC`` on a
contiguous shard of the problems, with ``sampling.tensor_parallel_size`` GPUs each
(``CUDA_VISIBLE_DEVICES`` set per replica; on CPU the cores are split between replicas). Every
replica is a fresh process, so all accelerator memory is free again when it exits.

Each shard's samples are written to ``<root>/<digest>/shard-NN.jsonl`` (atomically) as soon as that
replica finishes; the directory name is a digest of everything the samples depend on (model files,
sampling config, prompts, parameters, seeds), so a rerun of the same call reuses the finished
shards and samples only the missing ones. A failed replica is retried ``retries`` times; if it
still fails, :class:`ShardError` names it and its log while the finished shards stay on disk. The
merged result is the shards' samples in shard order: the same order as an unsharded call.

Determinism: a shard's samples depend only on its problems and the seeds, never on the other
shards, when the sampler's output for a prompt depends only on (prompt, seed):

- transformers backend: every (prompt, sample index) row draws from its own random stream seeded
  by :func:`problem_seed` (:class:`PerRowSampling`), and shards are cut at the backend's batch
  boundaries, so every batch is the batch an unsharded call computes: 1 or N replicas give the
  same samples, sampled or greedy.
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
import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starloop.loop.config import ConfigError, RunConfig, build
from starloop.loop.io import read_json, read_jsonl, write_json, write_jsonl
from starloop.loop.sample import GenParams
from starloop.loop.types import Sample
from starloop.verifiers.types import Problem

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_FN = "starloop.loop.run:sample_problems"


class ShardError(RuntimeError):
    """One or more replicas failed (after retries); the finished shards are kept on disk."""


def problem_seed(seed: int, key: str) -> int:
    """A 63-bit seed from ``seed`` and ``key`` (a prompt), stable across processes and machines."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class PerRowSampling:
    """A logits processor that samples every row of a batch from its own random stream.

    Gumbel-max: adding Gumbel noise to the temperature-scaled, top-p filtered logits and taking the
    argmax draws a token from exactly that distribution. Each row's noise comes from a generator
    seeded for that row, so a row's tokens depend only on its seed and its logits, never on which
    other prompts share the batch. Used with greedy decoding (``do_sample=False``).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float = 1.0):
        import torch

        if temperature <= 0:
            raise ValueError(f"PerRowSampling needs a temperature > 0, got {temperature}")
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch
        from transformers.generation.logits_process import TopPLogitsWarper

        if scores.shape[0] != len(self.generators):
            raise ValueError(f"PerRowSampling: batch of {scores.shape[0]} rows, {len(self.generators)} seeds")
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            scores = TopPLogitsWarper(self.top_p)(input_ids, scores)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        return scores + gumbel.to(scores.device)


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
    from starloop.loop.sample import _cuda_available

    if _cuda_available():
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if len(ids) < replicas * tp:
            raise ConfigError(f"sampling.data_parallel_size={replicas} x sampling.tensor_parallel_size={tp} needs "
                              f"{replicas * tp} GPUs; {len(ids)} visible")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[r * tp:(r + 1) * tp])} for r in range(replicas)]
    threads = max(1, len(os.sched_getaffinity(0)) // replicas)
    return [{"OMP_NUM_THREADS": str(threads)} for _ in range(replicas)]


@dataclass
class _Shard:
    index: int
    start: int
    end: int
    dir: Path

    @property
    def out(self) -> Path:
        return self.dir / f"shard-{self.index:02d}.jsonl"

    @property
    def spec(self) -> Path:
        return self.dir / f"shard-{self.index:02d}.spec.json"

    @property
    def log(self) -> Path:
        return self.dir / f"shard-{self.index:02d}.log"

    @property
    def error(self) -> Path:
        return self.dir / f"shard-{self.index:02d}.error"


def _model_fingerprint(model: str) -> list[Any]:
    path = Path(model)
    if not path.is_dir():
        return [model]
    return [model, *sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.is_file())]


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sample_sharded(model: str, cfg: RunConfig, problems: list[Problem], prompts: list[str], params: GenParams,
                   iteration: int, hinted: bool, seed: int, *, root: str | Path, retries: int = 1,
                   sample_fn: str = DEFAULT_SAMPLE_FN) -> list[Sample]:
    """Sample ``problems`` with ``cfg.sampling.data_parallel_size`` replicas; merge in problem order.

    ``sample_fn`` ("module:function") is what each replica calls on its shard, with the arguments of
    :func:`starloop.loop.run.sample_problems`. Finished shards are kept under ``root`` and reused by
    a rerun; raises :class:`ShardError` if a replica still fails after ``retries`` retries.
    """
    s = cfg.sampling
    if len(problems) != len(prompts):
        raise ValueError(f"{len(problems)} problems but {len(prompts)} prompts")
    align = s.batch_size if s.backend == "transformers" else 1
    bounds = [b for b in shard_bounds(len(problems), s.data_parallel_size, align) if b[1] > b[0]]
    call = {
        "model": _model_fingerprint(model), "sampling": dataclasses.asdict(s), "run_seed": cfg.seed,
        "problems": [p.id for p in problems], "prompts": prompts, "params": dataclasses.asdict(params),
        "iteration": iteration, "hinted": hinted, "seed": seed, "sample_fn": sample_fn, "bounds": bounds,
    }
    work = Path(root) / _digest(call)
    work.mkdir(parents=True, exist_ok=True)
    shards = [_Shard(i, a, b, work) for i, (a, b) in enumerate(bounds)]
    envs = replica_env(len(shards), s.tensor_parallel_size)
    for sh in shards:
        if not sh.out.exists():
            write_json(sh.spec, {
                "model": model, "config": cfg.to_dict(), "problems": [p.to_dict() for p in problems[sh.start:sh.end]],
                "prompts": prompts[sh.start:sh.end], "params": dataclasses.asdict(params), "iteration": iteration,
                "hinted": hinted, "seed": seed, "sample_fn": sample_fn, "out": str(sh.out),
            })
    reused = sum(sh.out.exists() for sh in shards)
    log.info("sampling %d problems on %d replicas (%d shard(s) already done) in %s", len(problems), len(shards),
             reused, work)
    pending = [sh for sh in shards if not sh.out.exists()]
    for attempt in range(retries + 1):
        if not pending:
            break
        if attempt:
            log.warning("retrying shard(s) %s (attempt %d of %d)", [sh.index for sh in pending], attempt + 1,
                        retries + 1)
        pending = _run_replicas(pending, envs, problems, params)
    if pending:
        details = "; ".join(f"shard {sh.index} (problems {sh.start}..{sh.end - 1}): {_last_error(sh)} "
                            f"[log: {sh.log}]" for sh in pending)
        done = len(shards) - len(pending)
        raise ShardError(f"{len(pending)} of {len(shards)} sampling shard(s) failed after {retries + 1} attempt(s): "
                         f"{details}. {done} finished shard(s) are kept in {work}; rerun to sample only the rest.")
    out: list[Sample] = []
    for sh in shards:
        out += [Sample.from_dict(r) for r in read_jsonl(sh.out)]
    return out


def _run_replicas(shards: list[_Shard], envs: list[dict[str, str]], problems: list[Problem],
                  params: GenParams) -> list[_Shard]:
    """Run one replica per shard, all at once; return the shards that failed."""
    procs: list[tuple[_Shard, subprocess.Popen, Any]] = []
    try:
        for sh in shards:
            sh.error.unlink(missing_ok=True)
            fh = sh.log.open("a")
            fh.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} replica {sh.index}: problems {sh.start}..{sh.end - 1}\n")
            fh.flush()
            env = {**os.environ, **envs[sh.index], "PYTHONUNBUFFERED": "1"}
            cmd = [sys.executable, "-m", "starloop.loop.shard", str(sh.spec)]
            procs.append((sh, subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT), fh))
        failed = []
        for sh, proc, _ in procs:
            code = proc.wait()
            ok = code == 0 and sh.out.exists() and _complete(sh, problems, params)
            if not ok:
                log.warning("shard %d failed (exit %d): %s", sh.index, code, _last_error(sh))
                failed.append(sh)
        return failed
    finally:
        for _, proc, fh in procs:
            if proc.poll() is None:  # interrupted: stop our replicas, keep what finished
                proc.kill()
                proc.wait()
            fh.close()


def _complete(sh: _Shard, problems: list[Problem], params: GenParams) -> bool:
    """The shard's file holds ``n`` samples for each of its problems, in problem order."""
    ids = [r["problem_id"] for r in read_jsonl(sh.out)]
    want = [p.id for p in problems[sh.start:sh.end] for _ in range(params.n)]
    if ids != want:
        sh.out.replace(sh.out.with_suffix(".bad"))
        sh.error.write_text(f"shard output has {len(ids)} samples not matching its {sh.end - sh.start} problems "
                            f"x n={params.n}; moved to {sh.out.with_suffix('.bad').name}")
        return False
    return True


def _last_error(sh: _Shard) -> str:
    for path in (sh.error, sh.log):
        if path.exists():
            lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
            if lines:
                return lines[-1].strip()
    return "no output"


def _resolve_fn(dotted: str):
    module, _, name = dotted.partition(":")
    if not name:
        raise ValueError(f"sample_fn must be 'module:function', got {dotted!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Replica entry point: ``python -m starloop.loop.shard SPEC``; writes the shard's samples."""
    argv = sys.argv[1:] if argv is None else argv
    spec_path = Path(argv[0])
    error = spec_path.with_name(spec_path.name.replace(".spec.json", ".error"))
    try:
        spec = read_json(spec_path)
        fn = _resolve_fn(spec["sample_fn"])
        cfg = build(RunConfig, spec["config"])
        params = GenParams(**{**spec["params"], "stop": tuple(spec["params"]["stop"])})
        problems = [Problem.from_dict(p) for p in spec["problems"]]
        samples = fn(spec["model"], cfg, problems, spec["prompts"], params, spec["iteration"], spec["hinted"],
                     spec["seed"])
        write_jsonl(spec["out"], (x.to_dict() for x in samples))
    except BaseException as exc:
        error.write_text(traceback.format_exc() + f"\n{type(exc).__name__}: {exc}\n")
        raise
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
