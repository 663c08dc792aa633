"""The one sampling path: a :class:`SampleRequest` (model, problems, prompts, params) in,
:class:`Sample` s out.

Every sampling need goes through :meth:`Sampling.sample`: the loop's sample stage, STaR
rationalization, evaluation, ``starloop sample`` and ``starloop eval``. It runs the configured
backend in one of three places, with the same function (:func:`draw`) each time:

- in this process, on an engine owned by the :class:`Sampling` object (a context manager) and
  reused while the model stays the same: consecutive stages that sample one checkpoint
  (evaluate after training, then the next iteration's sampling and rationalization) share one
  engine instead of paying its start-up twice. On vLLM's CPU engine, whose random stream is
  seeded once per engine, that reuse is also part of what makes a run reproducible. On a machine
  without an accelerator the engine also outlives training: the train stage parks it, and the
  next checkpoint of the same model is loaded into it (vLLM's in-place weight reload) instead of
  starting a new engine, drawing exactly what a new engine would (``Sampling.release``);
- in a fresh child process (``runtime.stage_processes``), so accelerator memory is free again
  when the phase ends;
- on ``sampling.data_parallel_size`` replicas, each a fresh process sampling a contiguous
  shard of the problems (``starloop.loop.runtime.shards``);
- on an OpenAI-compatible server (``sampling.backend: openai``, ``starloop.loop.runtime.served``), each
  finished request kept in the call's parts folder.

A request for the teacher's model (``sampling.teacher``) is sampled with the teacher's backend and
server; every sample records its role (``student`` or ``teacher``). One engine lives at a time, so an
in-process teacher and student take turns (each start releases the other's memory).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starloop.loop.config import SamplingConfig
from starloop.loop.fileio import write_jsonl
from starloop.loop.records import Sample, SampleRequest, sample_to_row, samples_from_generations
from starloop.loop.runtime import served, shards
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.processes import ChildJob, Executor, run_job
from starloop.loop.runtime.rundir import Parts
from starloop.loop.runtime.samplers import BACKENDS, Progress, Sampler, cuda_available

log = logging.getLogger(__name__)


def isolate_phases(stage_processes: str) -> bool:
    """Whether heavy phases run in child processes: ``runtime.stage_processes`` (auto: on a GPU machine)."""
    return stage_processes == "yes" or (stage_processes == "auto" and cuda_available())


def draw(sampler: Sampler, request: SampleRequest, progress: Progress = False) -> list[Sample]:
    """Sample ``request`` on ``sampler``, in this process."""
    return samples_from_generations(request, sampler.generate(request.prompts, request.params, progress=progress))


def teacher_sampling(s: SamplingConfig) -> SamplingConfig:
    """The teacher's sampling config: the student's, with the teacher's backend and server where it sets them."""
    t = s.teacher
    return dataclasses.replace(s, backend=t.backend or s.backend, base_url=t.base_url or s.base_url,
                               api_key_env=t.api_key_env or s.api_key_env, served_model=None)


def sample_here(cfg: SamplingConfig, engine_seed: int, request: SampleRequest, progress: Progress,
                load: LoadOptions | None = None) -> list[Sample]:
    """Sample ``request`` on a fresh engine in this process (what a child process runs)."""
    sampler = BACKENDS[cfg.backend](request.model, cfg, engine_seed, load)
    try:
        return draw(sampler, request, progress)
    finally:
        sampler.close()


def sample_shard(cfg: SamplingConfig, engine_seed: int, request: SampleRequest, out: str,
                 load: LoadOptions | None = None) -> int:
    """A replica's work: sample one shard and write its rows to ``out``; returns the row count.

    Its progress goes to the file beside ``out`` that the parent's aggregate bar reads."""
    bar = functools.partial(shards.FileProgress, progress_file=shards.progress_file(out))
    return write_jsonl(out, (sample_to_row(s) for s in sample_here(cfg, engine_seed, request, bar, load)))


class Sampling:
    """Owns the sampler engine of a run (or of one command) and routes every request.

    ``isolate`` runs each request in a fresh child process; ``data_parallel_size`` > 1 shards
    it over replicas, whose finished shards are kept in ``parts(key)`` (the run directory's
    shard folders in a run; a temporary folder otherwise), as are a server's finished requests.
    ``teacher`` is the teacher's model and sampling config; ``aliases`` maps a model path to the name a
    server serves it under (the student's starting model: ``sampling.served_model``).
    """

    def __init__(self, cfg: SamplingConfig, *, engine_seed: int, isolate: bool = False, progress: bool = False,
                 parts: Callable[[Any], Parts] | None = None, executor: Executor | None = None,
                 shard_fn: Callable[..., int] = sample_shard, load: LoadOptions | None = None,
                 teacher: tuple[str, SamplingConfig] | None = None, aliases: dict[str, str] | None = None):
        self.cfg, self.engine_seed, self.isolate, self.progress = cfg, engine_seed, isolate, progress
        self.load = load or LoadOptions()
        self.parts, self.executor, self.shard_fn = parts, executor, shard_fn
        self.teacher, self.aliases = teacher, aliases or {}
        self._live: Sampler | None = None
        self._live_key: tuple[str, str] | None = None
        self._carried: dict[str, Any] | None = None
        self._parked: Sampler | None = None

    def __enter__(self) -> Sampling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def engine(self, model: str, cfg: SamplingConfig | None = None) -> Sampler:
        """The live engine for ``model`` (with ``cfg``, default the student's): reused when it already runs that
        model, else replaced."""
        cfg = cfg or self.cfg
        if self._live is not None and self._live_key == (str(model), cfg.backend):
            return self._live
        carried = self._carried if self._live is None else None  # a stream carried over: only to a first engine
        self.release(park=True)
        target = self.aliases.get(str(model), str(model)) if cfg.backend == "openai" else str(model)
        parked, self._parked = self._parked, None
        if parked is not None and parked.can_load(target, cfg):
            log.info("loading %s into the running %s sampler (seed %d)", target, cfg.backend, self.engine_seed)
            parked.load(target)
            self._live = parked
        else:
            if parked is not None:
                parked.close()
            log.info("starting %s sampler on %s (seed %d)", cfg.backend, target, self.engine_seed)
            self._live = BACKENDS[cfg.backend](target, cfg, self.engine_seed, self.load)
        self._live_key = (str(model), cfg.backend)
        if carried is not None and carried.get("engine") == self._stream_key():
            self._live.restore_stream(carried["state"])
            log.info("sampler on %s: continuing the random stream where the run's last stage left it", target)
        return self._live

    def _stream_key(self) -> list[Any]:
        assert self._live_key is not None
        return [*self._live_key, self.engine_seed]

    def stream(self) -> dict[str, Any] | None:
        """Where the random stream of the next in-process draw stands (a JSON value; None when it starts afresh):
        the live engine's state, or the state :meth:`continue_stream` carries until an engine starts."""
        if self._live is None:
            return self._carried
        state = self._live.stream_state()
        return None if state is None else {"engine": self._stream_key(), "state": state}

    def continue_stream(self, record: dict[str, Any] | None) -> None:
        """Let the next engine started continue the stream ``record`` (a :meth:`stream`), if it is an engine of the
        same model, backend and seed: a resumed run's first engine picks up where the finished stages left off."""
        self._carried = record

    def release(self, park: bool = False) -> None:
        """Close the live engine (before training, so the trainer gets the memory); its stream ends with it.

        With ``park``, an in-process engine on a machine without an accelerator (where the engine holds no memory
        the trainer needs) is kept aside instead: the next engine asked for, when it is a checkpoint of the same
        model with the same settings, is this one with the new weights loaded (:meth:`Sampler.load`: the draws a
        new engine would make, without its start-up). Anything else closes the parked engine."""
        self._carried = None
        if self._parked is not None and not park:
            self._parked.close()
            self._parked = None
        if self._live is not None:
            if park and self._parked is None and not self.isolate and not cuda_available():
                self._parked = self._live
            else:
                self._live.close()
            self._live, self._live_key = None, None

    def _scratch(self, prefix: str) -> tempfile.TemporaryDirectory:
        """A temporary folder for child jobs outside a run: in the working directory when they may run on other
        machines (a remote executor's nodes see it on a shared filesystem), else the system's."""
        remote = self.executor is not None and self.executor.remote
        return tempfile.TemporaryDirectory(prefix=prefix, dir=Path.cwd() if remote else None)

    def route(self, request: SampleRequest) -> tuple[SamplingConfig, SampleRequest]:
        """The config that samples ``request`` (the teacher's for the teacher's model), and the request with its
        sampler role set."""
        if self.teacher is not None and request.model == self.teacher[0]:
            return self.teacher[1], dataclasses.replace(request, sampler="teacher")
        return self.cfg, dataclasses.replace(request, sampler="student")

    def sample(self, request: SampleRequest) -> list[Sample]:
        cfg, request = self.route(request)
        if cfg.backend == "openai":
            sampler = self.engine(request.model, cfg)
            assert isinstance(sampler, served.ServedSampler)
            key = served.call_key(sampler, request)
            if self.parts is not None:
                return served.sample_served(sampler, request, self.parts(key), self.progress)
            with tempfile.TemporaryDirectory(prefix="starloop-requests-") as tmp:  # outside a run: nothing to resume
                return served.sample_served(sampler, request, Parts(tmp), self.progress)
        if cfg.data_parallel_size > 1:
            self.release()
            key = shards.call_key(cfg, self.engine_seed, request, self.shard_fn, self.load)
            if self.parts is not None:
                return shards.sample_sharded(request, cfg, self.engine_seed, self.parts(key), self.shard_fn,
                                             executor=self.executor, load=self.load,
                                             progress=self.progress)
            with self._scratch("starloop-shards-") as tmp:  # outside a run: nothing to resume
                return shards.sample_sharded(request, cfg, self.engine_seed, Parts(tmp), self.shard_fn,
                                             executor=self.executor, load=self.load,
                                             progress=self.progress)
        if self.isolate:
            self.release()
            with self._scratch("starloop-sample-") as tmp:
                job = ChildJob(sample_here, (cfg, self.engine_seed, request, self.progress, self.load), Path(tmp),
                               "sample", gpus=cfg.tensor_parallel_size)
                return run_job(job, self.executor)
        return draw(self.engine(request.model, cfg), request, self.progress)
