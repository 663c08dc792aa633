"""The sample stage: ``sampling.n`` completions of the previous checkpoint for each problem of
the iteration's pool (all train problems, or a fresh random ``sampling.problems_per_iteration``),
or with ``sampling.adaptive`` as many as each problem needs, in verified rounds (stages/adaptive.py);
with ``label.rewrite`` an unlabeled problem's samples under several equivalent statements (stages/label.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from starloop.loop.records import GenParams, SampleRequest
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.curriculum import curriculum_pool
from starloop.loop.stages.adaptive import sample_adaptive
from starloop.loop.stages.label import sample_forms
from starloop.verifiers.records import Problem


def problem_pool(problems: list[Problem], k: int | None, seed: Any) -> list[Problem]:
    """The problems one iteration samples: ``k`` drawn at random with ``seed``, or all."""
    if k is None or k >= len(problems):
        return problems
    return random.Random(seed).sample(problems, k)


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    s = ctx.cfg.sampling
    problems, curriculum = ctx.train_problems, None
    if ctx.cfg.curriculum.enabled:  # the levels the model has reached (decided from earlier iterations)
        problems, curriculum = curriculum_pool(problems, ctx.cfg.curriculum, it, ctx.files.verified, ctx.files.samples)
    pool = problem_pool(problems, s.problems_per_iteration, ctx.seed("subset", it))
    params = GenParams(s.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=ctx.seed("sample", it))
    model = ctx.sampler_model(it)  # the teacher (sampling.teacher) or the previous checkpoint
    if s.adaptive.enabled:  # rounds, each verified as it comes (the verify stage keeps those verdicts)
        samples, adaptive = sample_adaptive(ctx, it, model, pool, params)
    elif ctx.cfg.label.enabled and ctx.cfg.label.rewrite != "none":  # unlabeled problems under several statements
        samples, adaptive = sample_forms(ctx, it, model, pool, params), None
    else:
        samples, adaptive = ctx.sampling.sample(SampleRequest(model, pool, ctx.prompts(pool), params, iteration=it)), None
    ctx.files.write_samples(out, "sample", samples)
    return {
        "problems": len(pool),
        "samples": len(samples),
        "truncated": sum(x.finish_reason == "length" for x in samples),
        "tokens": sum(x.num_tokens or 0 for x in samples),
        **({"adaptive": adaptive} if adaptive else {}),
        **({"curriculum": curriculum} if curriculum else {}),
    }


STAGE = Stage("sample", run)
