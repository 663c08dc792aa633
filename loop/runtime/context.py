"""What every stage gets: the :class:`RunContext`, built once per run, and the :class:`Stage` type."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starloop.loop.config import ModelConfig, RunConfig, SamplingConfig
from starloop.loop.errors import InputError
from starloop.loop.runtime.artifacts import ADAPTER, Artifacts
from starloop.loop.runtime.models import LoadOptions, check_model, load_tokenizer, resolve_model
from starloop.loop.runtime.prompts import problem_prompts
from starloop.loop.runtime.ray_executor import executor_for
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.runtime.sampling import Sampling, isolate_phases, teacher_sampling
from starloop.loop.runtime.seeds import Purpose, stage_seed
from starloop.loop.runtime.served import check_run
from starloop.loop.tasks import load_problems
from starloop.verifiers.records import Problem

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """A run's fixed inputs (config, run dir, problems, tokenizer, base model) and its sampler."""

    cfg: RunConfig
    rd: RunDir
    files: Artifacts
    train_problems: list[Problem]
    eval_problems: list[Problem]
    problems_by_id: dict[str, Problem]
    base_model: str
    tokenizer: Any
    sampling: Sampling
    isolate: bool
    """Heavy phases run in child processes (``runtime.stage_processes``)."""
    teacher_model: str | None = None
    """The teacher (``sampling.teacher``): its resolved folder, or its name on a server."""
    grown: set[int] = field(default_factory=set)
    """Iterations whose synthesized problems joined ``train_problems`` (see :meth:`grow`)."""

    @classmethod
    @contextlib.contextmanager
    def open(cls, cfg: RunConfig, rd: RunDir) -> Iterator[RunContext]:
        """Load the problems and the starting model once; the sampler engine closes on exit."""
        train = load_problems(cfg.data.train, cfg.seed)
        held_out = load_problems(cfg.data.eval, cfg.seed)
        overlap = {p.prompt for p in train} & {p.prompt for p in held_out}
        if overlap:
            raise InputError(f"{len(overlap)} eval problems also appear in the train pool, e.g. {sorted(overlap)[:3]}")
        base = resolve_model(cfg.model, cfg.prompt, cfg.seed)
        teacher = resolve_teacher(cfg)
        check_run(cfg, base, teacher)
        isolate = isolate_phases(cfg.runtime.stage_processes)
        log.info("run %s: %d train problems, %d eval problems, model %s%s", rd.root, len(train), len(held_out), base,
                 f", teacher {teacher[0]} ({teacher[1].backend})" if teacher else "")
        load = LoadOptions.of(cfg.model)
        served = cfg.sampling.served_model
        sampling = Sampling(cfg.sampling, engine_seed=cfg.seed, isolate=isolate, progress=cfg.runtime.progress,
                            parts=lambda key: rd.parts("shards", key), load=load, teacher=teacher,
                            executor=executor_for(cfg.runtime),
                            aliases={base: served} if served else None)
        with sampling:
            yield cls(cfg, rd, Artifacts(rd), train, held_out, {p.id: p for p in [*train, *held_out]}, base,
                      load_tokenizer(base, load), sampling, isolate, teacher[0] if teacher else None)

    def grow(self, iteration: int) -> int:
        """The problems the finished synthesize stages of iterations before ``iteration`` accepted join the pool
        (``train_problems``, ``problems_by_id``), each iteration's once; returns how many joined now."""
        added = 0
        for j in range(1, iteration):
            if j in self.grown or not self.rd.is_done(RunDir.key(j, "synthesize")):
                continue
            new = [p for p in self.files.synthesized(j) if p.id not in self.problems_by_id]
            self.train_problems += new
            self.problems_by_id.update((p.id, p) for p in new)
            self.grown.add(j)
            added += len(new)
        return added

    @property
    def progress(self) -> bool:
        return self.cfg.runtime.progress

    def prompts(self, problems: Sequence[Problem], texts: Sequence[str] | None = None) -> list[str]:
        """The rendered prompts of ``problems`` (statements replaced by ``texts`` when given)."""
        return problem_prompts(self.tokenizer, problems, self.cfg.prompt, texts)

    def model_for(self, iteration: int) -> str:
        """The checkpoint iteration ``iteration`` ends with (0: the starting model)."""
        return self.base_model if iteration == 0 else str(self.files.model(iteration))

    def sampler_model(self, iteration: int) -> str:
        """The model that samples and rationalizes in iteration ``iteration``: the teacher in iterations
        1..``sampling.teacher.iterations`` (every iteration when null), else the student's checkpoint of the
        iteration before. Evaluation always samples the student (:meth:`model_for`)."""
        limit = self.cfg.sampling.teacher.iterations
        if self.teacher_model is not None and (limit is None or iteration <= limit):
            return self.teacher_model
        return self.model_for(iteration - 1)

    def train_start(self, checkpoint: str) -> str:
        """What training from ``checkpoint`` loads: for a student sampled through a server (whose base model is
        fixed), the checkpoint's LoRA adapter, trained further on that base, so every iteration's adapter
        applies to the served base; else the checkpoint itself."""
        adapter = Path(checkpoint) / ADAPTER
        if self.cfg.sampling.backend == "openai" and (adapter / "adapter_config.json").is_file():
            return str(adapter)
        return checkpoint

    def seed(self, purpose: Purpose, iteration: int) -> Any:
        return stage_seed(self.cfg.seed, purpose, iteration)


def resolve_teacher(cfg: RunConfig) -> tuple[str, SamplingConfig] | None:
    """The teacher's model (built or checked like ``model.path``; on a server, its served name) and sampling
    config, or None without a teacher."""
    t = cfg.sampling.teacher
    if t.model is None:
        return None
    tcfg = teacher_sampling(cfg.sampling)
    if tcfg.backend == "openai":
        return t.model, tcfg
    if not t.model.startswith("builtin:"):
        check_model(t.model, "sampling.teacher.model")
        return t.model, tcfg
    spec = ModelConfig(path=t.model, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
                       builtin_options=t.builtin_options)
    return resolve_model(spec, cfg.prompt, cfg.seed), tcfg


@dataclass(frozen=True)
class Stage:
    """One stage: ``run(ctx, iteration, out)`` reads its inputs through ``ctx.files``, writes its
    outputs into ``out`` (a fresh folder, renamed into place when it returns) and returns the
    stats recorded in the manifest. ``needs`` names the stages of the same iteration whose outputs it
    reads (iteration 0 runs only ``evaluate``, on the starting model)."""

    name: str
    run: Callable[[RunContext, int, Path], dict[str, Any]]
    needs: tuple[str, ...] = ()
    when: Callable[[RunConfig], bool] | None = None
    """A stage that runs only for some configs (``label``: with ``label.enabled``); None: always."""
