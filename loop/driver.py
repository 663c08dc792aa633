"""The driver: runs the stage graph of a run, in order, each stage recorded when it finishes.

    iteration 0: evaluate the starting model
    iteration i: sample -> verify -> rationalize -> select -> pairs -> train -> evaluate

Every stage writes its outputs into a fresh folder, renamed into ``iter-NNN/<stage>`` when it
is complete and then recorded in the manifest (see ``rundir``). A rerun skips recorded stages,
so a killed run resumes at the first unfinished stage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.stages import evaluation, pairs, rationalize, sample, selection, train, verify

log = logging.getLogger("starloop")

# The stages of one iteration, in order.
STAGES: tuple[Stage, ...] = (
    sample.STAGE,
    verify.STAGE,
    rationalize.STAGE,
    selection.STAGE,
    pairs.STAGE,
    train.STAGE,
    evaluation.STAGE,
)


def check_order(stages: tuple[Stage, ...]) -> None:
    """Every stage comes after the stages whose outputs it reads (its ``needs``)."""
    seen: set[str] = set()
    for stage in stages:
        missing = [n for n in stage.needs if n not in seen]
        if missing:
            raise ValueError(f"stage {stage.name!r} reads {missing}, which do not run before it")
        seen.add(stage.name)


@contextlib.contextmanager
def _log_file(path: Path) -> Iterator[None]:
    """Everything the run logs also goes to ``run.log`` in the run directory."""
    logger = logging.getLogger("starloop")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


class Driver:
    """One run: a config, a run directory, and the stage graph between them."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None):
        check_order(STAGES)
        self.cfg = cfg
        self.rd = RunDir(run_dir or Path(cfg.runs_dir) / cfg.name)

    def plan(self) -> list[tuple[int, Stage]]:
        """Every (iteration, stage) of the run, in order."""
        return [(0, evaluation.STAGE)] + [(it, s) for it in range(1, self.cfg.iterations + 1) for s in STAGES]

    def pending(self) -> list[str]:
        return [k for k in (RunDir.key(it, s.name) for it, s in self.plan()) if not self.rd.is_done(k)]

    def run(self) -> list[dict[str, Any]]:
        """Run (or resume) every unfinished stage; returns the metrics rows."""
        self.rd.init(self.cfg)
        if not self.pending():
            log.info("run %s is complete (%d iterations); nothing to do", self.rd.root, self.cfg.iterations)
            return self.rd.metrics()
        with _log_file(self.rd.root / "run.log"), RunContext.open(self.cfg, self.rd) as ctx:
            for it, stage in self.plan():
                self.run_stage(ctx, it, stage)
        return self.rd.metrics()

    def run_stage(self, ctx: RunContext, it: int, stage: Stage) -> None:
        key = RunDir.key(it, stage.name)
        if self.rd.is_done(key):
            log.info("%s: done already, skipping", key)
            return
        log.info("%s: running", key)
        t0 = time.time()
        with self.rd.stage(key) as out:
            info = stage.run(ctx, it, out) or {}
        info["seconds"] = round(time.time() - t0, 2)
        self.rd.record(key, info)
        log.info("%s: finished in %.1fs", key, info["seconds"])
