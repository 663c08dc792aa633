"""The sample stage: ``sampling.n`` completions of the previous checkpoint for each problem of
the iteration's pool (all train problems, or a fresh random ``sampling.problems_per_iteration``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from starloop.loop.records import GenParams, SampleRequest
from starloop.loop.runtime.context import RunContext, Stage
from starloop.verifiers.records import Problem


def problem_pool(problems: list[Problem], k: int | None, seed: Any) -> list[Problem]:
    """The problems one iteration samples: ``k`` drawn at random with ``seed``, or all."""
    if k is None or k >= len(problems):
        return problems
    return random.Random(seed).sample(problems, k)


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    s = ctx.cfg.sampling
    pool = problem_pool(ctx.train_problems, s.problems_per_iteration, ctx.seed("subset", it))
    params = GenParams(s.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=ctx.seed("sample", it))
    samples = ctx.sampling.sample(SampleRequest(ctx.model_for(it - 1), pool, ctx.prompts(pool), params, iteration=it))
    ctx.files.write_samples(out, "sample", samples)
    return {
        "problems": len(pool),
        "samples": len(samples),
        "truncated": sum(x.finish_reason == "length" for x in samples),
        "tokens": sum(x.num_tokens or 0 for x in samples),
    }


STAGE = Stage("sample", run)
