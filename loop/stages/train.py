"""The train stage: the checkpoint an iteration ends with (``train/model``).

From the base model or the previous checkpoint (``train.init``): SFT on the select stage's rows
(``train.sft``), then DPO on the pairs stage's pairs (``train.dpo``), each when enabled; with
both, the SFT checkpoint is kept as ``train/sft_model`` (``train.keep_sft_model``). A phase with
nothing to train on (no SFT rows, no pairs) is skipped and recorded as such; the checkpoint is
then the one it would have started from.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from starloop.loop.runtime.artifacts import MODEL, SFT_MODEL
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.launch import run_training
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.stages.pairs import no_pairs_message

log = logging.getLogger(__name__)


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    cfg = ctx.cfg
    t = cfg.train
    init = ctx.base_model if t.init == "base" else ctx.model_for(it - 1)
    ctx.sampling.release(park=True)  # the trainer gets the accelerator memory (on CPU the engine waits, see release)
    info: dict[str, Any] = {"init": init}
    current = init

    def train(kind: str, start: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return run_training(t, kind, start, out, rows=rows, isolate=ctx.isolate, load=LoadOptions.of(cfg.model))

    if t.sft.enabled:
        rows = ctx.files.rows(it, "select")
        if rows:
            info["sft"] = train("sft", ctx.train_start(init), rows)
            current = str(out / MODEL)
        else:
            log.warning("iteration %d: empty SFT set, SFT skipped", it)
            info["sft"] = {"skipped": "no rows", "rows": 0, "steps": 0}
    if t.dpo.enabled:
        pairs = ctx.files.rows(it, "pairs")
        if pairs:
            if current != init:  # SFT ran: keep its checkpoint beside the DPO one
                os.replace(out / MODEL, out / SFT_MODEL)
                current = str(out / SFT_MODEL)
            info["dpo"] = train("dpo", ctx.train_start(current), pairs)
            if current != init and not t.keep_sft_model:
                shutil.rmtree(out / SFT_MODEL)
            log.info("iteration %d: DPO on %d pairs, loss %s -> %s", it, len(pairs), info["dpo"].get("first_loss"),
                     info["dpo"].get("last_loss"))
            current = str(out / MODEL)
        else:
            log.warning("iteration %d: DPO skipped, %s", it,
                        no_pairs_message(ctx.rd.stage_info(RunDir.key(it, "pairs"))))
            info["dpo"] = {"skipped": "no pairs"}
    if current == init:  # nothing was trained: the iteration ends with the model it started from
        log.warning("iteration %d: model carried over unchanged", it)
        shutil.copytree(init, out / MODEL)
    return info


STAGE = Stage("train", run, needs=("select", "pairs"))
