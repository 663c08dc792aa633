"""What every stage gets: the :class:`RunContext`, built once per run, and the :class:`Stage` type."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig
from starloop.loop.errors import InputError
from starloop.loop.runtime.artifacts import Artifacts
from starloop.loop.runtime.models import LoadOptions, load_tokenizer, resolve_model
from starloop.loop.runtime.prompts import problem_prompts
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.runtime.sampling import Sampling, isolate_phases
from starloop.loop.runtime.seeds import Purpose, stage_seed
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
        isolate = isolate_phases(cfg.runtime.stage_processes)
        log.info("run %s: %d train problems, %d eval problems, model %s", rd.root, len(train), len(held_out), base)
        load = LoadOptions.of(cfg.model)
        sampling = Sampling(cfg.sampling, engine_seed=cfg.seed, isolate=isolate, progress=cfg.runtime.progress,
                            parts=lambda key: rd.parts("shards", key), load=load)
        with sampling:
            yield cls(cfg, rd, Artifacts(rd), train, held_out, {p.id: p for p in [*train, *held_out]}, base,
                      load_tokenizer(base, load), sampling, isolate)

    @property
    def progress(self) -> bool:
        return self.cfg.runtime.progress

    def prompts(self, problems: Sequence[Problem], texts: Sequence[str] | None = None) -> list[str]:
        """The rendered prompts of ``problems`` (statements replaced by ``texts`` when given)."""
        return problem_prompts(self.tokenizer, problems, self.cfg.prompt, texts)

    def model_for(self, iteration: int) -> str:
        """The checkpoint iteration ``iteration`` ends with (0: the starting model)."""
        return self.base_model if iteration == 0 else str(self.files.model(iteration))

    def seed(self, purpose: Purpose, iteration: int) -> Any:
        return stage_seed(self.cfg.seed, purpose, iteration)


@dataclass(frozen=True)
class Stage:
    """One stage: ``run(ctx, iteration, out)`` reads its inputs through ``ctx.files``, writes its
    outputs into ``out`` (a fresh folder, renamed into place when it returns) and returns the
    stats recorded in the manifest. ``needs`` names the stages of the same iteration whose outputs it
    reads (iteration 0 runs only ``evaluate``, on the starting model)."""

    name: str
    run: Callable[[RunContext, int, Path], dict[str, Any]]
    needs: tuple[str, ...] = ()
