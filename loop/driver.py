"""The driver: runs the stage graph of a run, in order, each stage recorded when it finishes.

    iteration 0: evaluate the starting model
    iteration i: [synthesize] -> sample -> [label] -> verify -> rationalize -> select -> pairs -> train
                 -> evaluate (synthesize, label: only when enabled in the config)

Every stage writes its outputs into a fresh folder, renamed into ``iter-NNN/<stage>`` when it
is complete and then recorded, with a fingerprint of its files, in the manifest (see
``runtime.rundir``). The driver holds the run directory's lock for the whole run. A rerun
checks the finished stages first: it skips those intact and redoes, from the first one that is
unfinished or whose files changed, every stage after it (later iterations included), so no
stage ever stands on outputs that are not the ones it was computed from. The run directory is
tied to its config only once the run's inputs (data, model) loaded.

A stage that ends with an in-process sampler engine whose draws depend on its history (vLLM on CPU)
also writes where that engine's random stream stands (``STREAM_FILE``); a resumed run continues
the stream the stage before its first unfinished one left, so it draws the samples the
uninterrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig
from starloop.loop.errors import DiskFull, InputError, is_disk_full, raise_if_signalled
from starloop.loop.fileio import read_json, write_json
from starloop.loop.runtime.artifacts import Artifacts
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.failpoints import failpoint
from starloop.loop.runtime.hub import publish
from starloop.loop.runtime.lock import RunLock
from starloop.loop.runtime.rundir import RunDir, rebuild_metrics
from starloop.loop.stages import (
    evaluation,
    label,
    pairs,
    rationalize,
    sample,
    selection,
    synthesize,
    train,
    verify,
)

log = logging.getLogger("starloop")

STREAM_FILE = "sampler_stream.json"
"""In a stage's folder: the random state of the in-process sampler engine when the stage ended."""

# The stages of one iteration, in order.
STAGES: tuple[Stage, ...] = (
    synthesize.STAGE,
    sample.STAGE,
    label.STAGE,
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
        stages = [s for s in STAGES if s.when is None or s.when(self.cfg)]
        return [(0, evaluation.STAGE)] + [(it, s) for it in range(1, self.cfg.iterations + 1) for s in stages]

    def keys(self) -> list[str]:
        return [RunDir.key(it, s.name) for it, s in self.plan()]

    def pending(self) -> list[str]:
        return [k for k in self.keys() if not self.rd.is_done(k)]

    def run(self) -> list[dict[str, Any]]:
        """Run (or resume) every unfinished stage; returns the metrics rows."""
        if self.rd.root.exists() and not self.rd.root.is_dir():
            raise InputError(f"run directory {self.rd.root} is a file, not a folder; give another --run-dir")
        with RunLock(self.rd.root):
            if self.rd.check(self.cfg):
                self.repair()
                if not self.pending():
                    log.info("run %s is complete (%d iterations); nothing to do", self.rd.root, self.cfg.iterations)
                    self.publish(self.cfg.iterations, final=True)  # a push that failed before is retried
                    return self.rd.metrics()
            with _log_file(self.rd.root / "run.log"), RunContext.open(self.cfg, self.rd) as ctx:
                self.rd.init(self.cfg)  # the inputs loaded: only now is the run dir tied to this config
                ctx.sampling.continue_stream(self.stream_before(self.pending()))
                for it, stage in self.plan():
                    if synthesize.enabled(self.cfg) and ctx.grow(it):  # the pool of later iterations
                        log.info("iteration %d: the pool has %d problems (synthesized ones included)", it,
                                 len(ctx.train_problems))
                    if self.run_stage(ctx, it, stage) and stage is evaluation.STAGE:
                        self.publish(it, final=False)
                self.publish(self.cfg.iterations, final=True)
        return self.rd.metrics()

    def stream_before(self, pending: list[str]) -> dict[str, Any] | None:
        """The sampler stream the finished stage before the first of ``pending`` left (see ``STREAM_FILE``)."""
        keys = self.keys()
        i = keys.index(pending[0]) if pending else 0
        path = self.rd.path(keys[i - 1]) / STREAM_FILE if i > 0 and self.rd.is_done(keys[i - 1]) else None
        if path is None or not path.exists():
            return None
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:  # only reproducibility is at stake: say so and draw afresh
            log.warning("%s is unreadable (%s); the resumed run's sampler starts a fresh random stream", path, exc)
            return None

    def publish(self, it: int, *, final: bool) -> None:
        """Push iteration ``it``'s checkpoint to the Hub as the ``hub`` section asks (each / final)."""
        if it > 0 and self.cfg.hub.repo_id and (self.cfg.hub.push == "final") == final:
            publish(self.cfg, self.rd, it, Artifacts(self.rd).model(it))

    def repair(self) -> None:
        """Trust only what is intact: from the first stage that is unfinished or whose files changed
        since it finished, forget every later stage's record (they are redone); rebuild the metrics."""
        keys = self.keys()
        for i, key in enumerate(keys):
            why = self.rd.damage(key)
            if why is None and self.rd.is_done(key):
                continue
            later = [k for k in keys[i + 1:] if self.rd.stage_info(k) is not None]
            if why is not None:
                log.warning("%s: its outputs changed since it finished (%s); redoing it and the %d finished "
                            "stage(s) after it", key, why, len(later))
            elif later:
                log.warning("%s is unfinished; the %d finished stage(s) after it stand on older outputs and are "
                            "redone: %s", key, len(later), ", ".join(later))
            self.rd.forget(keys[i:])
            break
        rebuilt = rebuild_metrics(self.rd)
        if rebuilt:
            log.warning("metrics.jsonl: rows of iteration(s) %s restored from their evaluate stages", rebuilt)

    def run_stage(self, ctx: RunContext, it: int, stage: Stage) -> bool:
        """Run one stage unless it is done; True if it ran."""
        key = RunDir.key(it, stage.name)
        raise_if_signalled()  # an interruption swallowed inside the last stage stops the run here
        if self.rd.is_done(key):
            log.info("%s: done already, skipping", key)
            return False
        log.info("%s: running", key)
        t0 = time.time()
        try:
            with self.rd.stage(key) as out:
                failpoint(f"running:{key}")
                info = stage.run(ctx, it, out) or {}
                stream = ctx.sampling.stream()
                if stream is not None:
                    write_json(out / STREAM_FILE, stream)
        except Exception as exc:
            if is_disk_full(exc) and not isinstance(exc, DiskFull):
                raise DiskFull(self.rd.path(key)) from exc
            raise
        failpoint(f"renamed:{key}")
        info["seconds"] = round(time.time() - t0, 2)
        self.rd.record(key, info)
        log.info("%s: finished in %.1fs", key, info["seconds"])
        return True
