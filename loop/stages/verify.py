"""The verify stage: judge samples through the verifier registry, chosen by each problem's task."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from starloop.loop.config import VerifyConfig
from starloop.loop.records import Sample
from starloop.loop.runtime.context import RunContext, Stage
from starloop.verifiers.records import REASONS, Problem
from starloop.verifiers.registry import VerifyItem, verify_batch

log = logging.getLogger(__name__)
CHUNK = 512


def verify_samples(samples: Sequence[Sample], problems: dict[str, Problem], cfg: VerifyConfig, *,
                   progress: bool = False) -> dict[str, dict[str, float]]:
    """Set ``sample.verdict`` on every sample (in place); return per-verifier stats.

    Stats per verifier: n, pass_rate, and the rate of every verdict reason.
    """
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.problem_id not in problems:
            raise KeyError(f"sample {i} refers to unknown problem {s.problem_id!r}")
        by_task[problems[s.problem_id].task].append(i)
    stats: dict[str, dict[str, float]] = {}
    bar = tqdm(total=len(samples), desc="verify", disable=not progress, unit="sample")
    for task, idxs in by_task.items():
        counts: Counter[str] = Counter()
        for start in range(0, len(idxs), CHUNK):
            part = idxs[start : start + CHUNK]
            items = [VerifyItem(samples[i].completion, problems[samples[i].problem_id], samples[i].finish_reason)
                     for i in part]
            for i, v in zip(part, verify_batch(task, items, options=cfg.options.get(task), workers=cfg.workers),
                            strict=True):
                samples[i].verdict = v
                counts[v.reason] += 1
            bar.update(len(part))
        n = len(idxs)
        stats[task] = {"n": n, "pass_rate": counts["ok"] / n, **{f"{r}_rate": counts[r] / n for r in REASONS}}
        log.info("verifier %s: %d samples, pass %.1f%%, unparseable %.1f%%, truncated %.1f%%, timeout %.1f%%",
                 task, n, 100 * stats[task]["pass_rate"], 100 * stats[task]["unparseable_rate"],
                 100 * stats[task]["truncated_rate"], 100 * stats[task]["timeout_rate"])
    bar.close()
    return stats


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    samples = ctx.files.samples(it)
    stats = verify_samples(samples, ctx.problems_by_id, ctx.cfg.verify, progress=ctx.progress)
    ctx.files.write_samples(out, "verify", samples)
    return {"samples": len(samples), "verified": sum(x.correct for x in samples),
            "solved_problems": len({x.problem_id for x in samples if x.correct}), "per_verifier": stats}


STAGE = Stage("verify", run, needs=("sample",))
