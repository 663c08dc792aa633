"""Experiment trackers: :func:`log_iteration` sends each iteration's metrics row, and the numbers of
that iteration's stages (training loss, rows, samples, seconds), to TensorBoard and / or Weights &
Biases when ``runtime.report_to`` names them (off by default).

One tracker run per starloop run, the iteration as its step: TensorBoard event files in
``<run dir>/tensorboard``; one W&B run whose id is derived from the run directory, resumed at each
iteration (offline mode, ``WANDB_MODE=offline``, keeps it on disk for a later ``wandb sync``). The
trainers do not open runs of their own (``report_to: none``), unless ``train.sft.report_to`` /
``train.dpo.report_to`` ask for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig

log = logging.getLogger(__name__)

def flatten_metrics(row: dict[str, Any], prefix: str = "starloop") -> dict[str, float]:
    """Numeric leaves of a metrics row as ``prefix/a/b`` keys (``starloop/pass@k/4``)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "iteration":
            out[name] = float(value)
    return out


def _trackers(report_to: list[str]) -> list[str]:
    wanted = set(report_to)
    if "all" in wanted:
        wanted |= {"tensorboard", "wandb"}
    return [t for t in ("tensorboard", "wandb") if t in wanted]


def log_iteration(cfg: RunConfig, root: str | Path, row: dict[str, Any],
                  stages: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Log one iteration's metrics row to the trackers named in ``cfg.runtime.report_to``.

    TensorBoard event files go to ``<run dir>/tensorboard``; Weights & Biases gets a run named after
    the experiment whose id is derived from the run directory, resumed on every call (or the
    active run, when one is open in this process). A named tracker that is not installed is
    reported with a warning, one that fails with an error (the row is safe in metrics.jsonl
    already, so the evaluation is not lost). Returns the trackers that were written to.
    """
    done = []
    scalars = {**flatten_metrics(row), **flatten_metrics(stages or {}, "starloop/stages")}
    for tracker in _trackers(list(cfg.runtime.report_to)):
        try:
            if _LOGGERS[tracker](cfg, Path(root), int(row["iteration"]), scalars):
                done.append(tracker)
        except Exception as exc:  # the row is already in metrics.jsonl; a tracker outage must not fail the stage
            log.error("could not log iteration %s to %s: %s: %s", row["iteration"], tracker, type(exc).__name__, exc)
    return done


def _log_tensorboard(cfg: RunConfig, root: Path, step: int, scalars: dict[str, float]) -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # heavy, optional: deferred
    except ImportError:
        log.warning("runtime.report_to names tensorboard, but it is not installed (pip install tensorboard)")
        return False
    writer = SummaryWriter(log_dir=str(root / "tensorboard"))
    try:
        for key, value in scalars.items():
            writer.add_scalar(key, value, global_step=step)
    finally:
        writer.close()
    return True


def _log_wandb(cfg: RunConfig, root: Path, step: int, scalars: dict[str, float]) -> bool:
    try:
        import wandb  # optional: deferred
    except ImportError:
        log.warning("runtime.report_to names wandb, but it is not installed (pip install wandb)")
        return False
    run, own = wandb.run, False
    if run is None:
        run_id = "starloop-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "starloop"), name=cfg.name, id=run_id,
                         resume="allow", config=cfg.to_dict(), dir=str(root))
        own = True
    run.define_metric("starloop/*", step_metric="starloop/iteration")
    run.log({**scalars, "starloop/iteration": step})
    if own:
        run.finish()
    return True


_LOGGERS = {"tensorboard": _log_tensorboard, "wandb": _log_wandb}
