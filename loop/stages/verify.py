"""The verify stage: judge samples through the verifier registry, chosen by each problem's task."""

from __future__ import annotations

import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from starloop.loop.config import VerifyConfig
from starloop.loop.records import Sample
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.rundir import Parts, fingerprint
from starloop.loop.stages import label
from starloop.verifiers.records import REASONS, Problem, Verdict
from starloop.verifiers.registry import VerifyItem, get_verifier, verify_batch

log = logging.getLogger(__name__)
CHUNK = 256


def verify_in_chunks(task: str, items: Sequence[VerifyItem], *, options: dict[str, Any] | None, workers: int,
                     parts: Parts | None = None, bar: tqdm | None = None) -> list[Verdict]:
    """Verdicts for ``items`` with verifier ``task``, ``CHUNK`` at a time; with ``parts``, each finished
    chunk is kept there as it is done and a rerun takes it from there instead of verifying it again."""
    verdicts: list[Verdict] = []
    reused = 0
    for start in range(0, len(items), CHUNK):
        chunk, name = items[start : start + CHUNK], f"{task}-{start:09d}"
        kept = [Verdict.from_dict(r) for r in parts.read(name)] if parts is not None and parts.done(name) else []
        if len(kept) == len(chunk):
            reused += len(kept)
        else:
            kept = verify_batch(task, chunk, options=options, workers=workers)
            if parts is not None:
                parts.write(name, (v.to_dict() for v in kept))
        verdicts += kept
        if bar is not None:
            bar.update(len(chunk))
    if reused:
        log.info("verifier %s: %d of %d verdicts kept from an interrupted attempt", task, reused, len(items))
    return verdicts


def verify_samples(samples: Sequence[Sample], problems: dict[str, Problem], cfg: VerifyConfig, *,
                   progress: bool = False, parts: Parts | None = None) -> dict[str, dict[str, float]]:
    """Set ``sample.verdict`` on every sample that has none (in place); return per-verifier stats over all.

    Every problem is checked by its verifier before any work. Stats per verifier: n, pass_rate, and
    the rate of every verdict reason.
    """
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.problem_id not in problems:
            raise KeyError(f"sample {i} refers to unknown problem {s.problem_id!r}")
        by_task[problems[s.problem_id].task].append(i)
    for task, idxs in by_task.items():
        get_verifier(task).check([problems[samples[i].problem_id] for i in idxs])
    stats: dict[str, dict[str, float]] = {}
    with tqdm(total=len(samples), desc="verify", disable=not progress, unit="sample") as bar:
        for task, idxs in by_task.items():
            todo = [i for i in idxs if samples[i].verdict is None]
            items = [VerifyItem(samples[i].completion, problems[samples[i].problem_id], samples[i].finish_reason)
                     for i in todo]
            verdicts = verify_in_chunks(task, items, options=cfg.options.get(task), workers=cfg.workers,
                                        parts=parts, bar=bar) if items else []
            for i, v in zip(todo, verdicts, strict=True):
                samples[i].verdict = v
            if len(todo) < len(idxs):
                log.info("verifier %s: %d samples already judged (adaptive sampling), %d to judge", task,
                         len(idxs) - len(todo), len(todo))
                bar.update(len(idxs) - len(todo))
            counts = Counter(samples[i].verdict.reason for i in idxs)
            n = len(idxs)
            stats[task] = {"n": n, "pass_rate": counts["ok"] / n, **{f"{r}_rate": counts[r] / n for r in REASONS}}
            log.info("verifier %s: %d samples, pass %.1f%%, unparseable %.1f%%, truncated %.1f%%, timeout %.1f%%",
                     task, n, 100 * stats[task]["pass_rate"], 100 * stats[task]["unparseable_rate"],
                     100 * stats[task]["truncated_rate"], 100 * stats[task]["timeout_rate"])
    return stats


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    samples = ctx.files.samples(it)
    problems, skipped = ctx.problems_by_id, 0
    key: dict[str, Any] = {"samples": fingerprint(ctx.files.path(it, "sample").parent)}
    own: list[Sample] = []
    if label.enabled(ctx.cfg):  # unlabeled problems are checked against their pseudo-labels, or not at all
        problems = label.labeled_problems(problems, ctx.files.rows(it, "label"))
        key["labels"] = fingerprint(ctx.files.path(it, "label").parent)
        if ctx.cfg.label.vote == "own":  # no filter: each sample is judged by its own answer
            own = [s for s in samples if label.unlabeled(ctx.problems_by_id[s.problem_id])]
            for s in own:
                s.verdict = label.own_verdict(s)
        kept = [s for s in samples if s.problem_id in problems]
        skipped, samples = len(samples) - len(kept) - len(own), kept
        if skipped:
            log.info("verify: %d samples of unlabeled problems without a pseudo-label this iteration left out", skipped)
    # Verdicts are kept as they come, so an interrupted verification resumes where it stopped.
    key.update(verify=ctx.cfg.verify.options,
               verifiers={t: get_verifier(t).version for t in {p.task for p in ctx.problems_by_id.values()}})
    parts = ctx.rd.parts("verify", key)
    stats = verify_samples(samples, problems, ctx.cfg.verify, progress=ctx.progress, parts=parts)
    samples += own
    ctx.files.write_samples(out, "verify", samples)
    shutil.rmtree(parts.dir, ignore_errors=True)
    return {"samples": len(samples), "verified": sum(x.correct for x in samples),
            "solved_problems": len({x.problem_id for x in samples if x.correct}), "per_verifier": stats,
            **({"unlabeled_skipped": skipped, "own_label": len(own)} if label.enabled(ctx.cfg) else {})}


STAGE = Stage("verify", run, needs=("sample",))
