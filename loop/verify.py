"""The verify stage: judge samples through the verifier registry, chosen by each problem's task."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from starloop.loop.config import VerifyConfig
from starloop.loop.types import Sample
from starloop.verifiers.registry import VerifyItem, verify_batch
from starloop.verifiers.types import REASONS, Problem

log = logging.getLogger(__name__)


def verify_samples(
    samples: Sequence[Sample], problems: dict[str, Problem], cfg: VerifyConfig, *, progress: bool = False
) -> dict[str, dict[str, float]]:
    """Set ``sample.verdict`` on every sample (in place); return per-verifier stats.

    Stats per verifier: n, pass_rate, and the rate of every verdict reason.
    """
    from tqdm.auto import tqdm

    by_task: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if s.problem_id not in problems:
            raise KeyError(f"sample {i} refers to unknown problem {s.problem_id!r}")
        by_task[problems[s.problem_id].task].append(i)
    stats: dict[str, dict[str, float]] = {}
    bar = tqdm(total=len(samples), desc="verify", disable=not progress, unit="sample")
    chunk = 512
    for task, idxs in by_task.items():
        counts: Counter[str] = Counter()
        for start in range(0, len(idxs), chunk):
            part = idxs[start : start + chunk]
            items = [
                VerifyItem(samples[i].completion, problems[samples[i].problem_id], samples[i].finish_reason)
                for i in part
            ]
            verdicts = verify_batch(task, items, options=cfg.options.get(task), workers=cfg.workers)
            for i, v in zip(part, verdicts, strict=True):
                samples[i].verdict = v.to_dict()
                counts[v.reason] += 1
            bar.update(len(part))
        n = len(idxs)
        stats[task] = {"n": n, "pass_rate": counts["ok"] / n, **{f"{r}_rate": counts[r] / n for r in REASONS}}
        log.info(
            "verifier %s: %d samples, pass %.1f%%, unparseable %.1f%%, truncated %.1f%%, timeout %.1f%%",
            task, n, 100 * stats[task]["pass_rate"], 100 * stats[task]["unparseable_rate"],
            100 * stats[task]["truncated_rate"], 100 * stats[task]["timeout_rate"],
        )
    bar.close()
    return stats
