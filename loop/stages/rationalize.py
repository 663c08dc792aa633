"""The rationalize stage (STaR): re-ask failed problems with the gold answer as a hint.

Only verified rationales are kept, and they are stored under the original hint-free prompt, so
the model learns to produce the reasoning without the hint. A rationale that merely restates
the hint (mentions it, or has no reasoning besides the answer) is rejected.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from starloop.loop.config import RationalizeConfig
from starloop.loop.records import GenParams, Sample, SampleRequest
from starloop.loop.runtime.artifacts import HINTED
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.stages.verify import verify_samples
from starloop.verifiers.records import Problem

log = logging.getLogger(__name__)
MIN_REASONING_CHARS = 3
_ANSWER_LINE = re.compile(r"(####.*|\\boxed\{.*\}|the answer is.*)$", re.I | re.M)


def failed_problems(problems: list[Problem], samples: list[Sample]) -> list[Problem]:
    """Problems none of whose samples was verified correct."""
    solved = {s.problem_id for s in samples if s.correct}
    return [p for p in problems if p.id not in solved and p.answer is not None]


def hinted_text(problem: Problem, cfg: RationalizeConfig) -> str:
    return cfg.hint_template.format(prompt=problem.prompt, answer=problem.answer)


def template_phrases(template: str) -> list[str]:
    """The hint template's own wording: its literal text between the placeholders, trimmed of spaces and
    punctuation, where it has a letter (``"{prompt} (Hint: the answer is {answer}.)"`` -> ``["Hint: the
    answer is"]``; a template of punctuation only, like ``"({answer}) {prompt}"``, has none)."""
    parts = re.split(r"\{[^{}]*\}", template)
    return [t for t in (p.strip(" \t\n()[].,;:") for p in parts) if re.search(r"[A-Za-z]", t)]


def restates_hint(completion: str, answer: str, template: str = "") -> bool:
    """True if the completion leans on the hint instead of reasoning to the answer: it speaks of a hint,
    repeats the hint template's wording, or has no reasoning besides the answer."""
    low = completion.lower()
    if "hint" in low or any(p.lower() in low for p in template_phrases(template)):
        return True
    reasoning = _ANSWER_LINE.sub("", completion)
    if answer:
        reasoning = reasoning.replace(answer, "")
    return len(re.sub(r"[\W_]", "", reasoning)) < MIN_REASONING_CHARS and len(reasoning.strip()) < 2 * MIN_REASONING_CHARS


def keep_rationales(
    hinted: list[Sample], problems: dict[str, Problem], plain_prompts: dict[str, str], cfg: RationalizeConfig
) -> tuple[list[Sample], dict[str, int]]:
    """Verified hinted samples, re-homed under the hint-free prompt, and counts."""
    kept, restated = [], 0
    for s in hinted:
        if not s.correct:
            continue
        if cfg.reject_restated_hint and restates_hint(s.completion, problems[s.problem_id].answer or "",
                                                      cfg.hint_template):
            restated += 1
            continue
        s.prompt = plain_prompts[s.problem_id]
        kept.append(s)
    stats = {
        "hinted_samples": len(hinted),
        "hinted_correct": sum(s.correct for s in hinted),
        "rejected_restated_hint": restated,
        "rationalized": len(kept),
        "rationalized_problems": len({s.problem_id for s in kept}),
    }
    return kept, stats


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    verified = ctx.files.verified(it)
    sampled = {x.problem_id for x in verified}
    failed = failed_problems([p for p in ctx.train_problems if p.id in sampled], verified)
    r, s = ctx.cfg.rationalize, ctx.cfg.sampling
    kept: list[Sample] = []
    stats: dict[str, Any] = {"failed_problems": len(failed)}
    if r.enabled and failed:
        params = GenParams(r.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=ctx.seed("rationalize", it))
        prompts = ctx.prompts(failed, texts=[hinted_text(p, r) for p in failed])
        hinted = ctx.sampling.sample(SampleRequest(ctx.sampler_model(it), failed, prompts, params, iteration=it,
                                                   hinted=True))
        verify_samples(hinted, ctx.problems_by_id, ctx.cfg.verify, progress=ctx.progress)
        plain = dict(zip([p.id for p in failed], ctx.prompts(failed), strict=True))
        kept, rstats = keep_rationales(hinted, ctx.problems_by_id, plain, r)
        stats.update(rstats)
        ctx.files.write_samples(out, "rationalize", hinted, name=HINTED)
    else:
        stats.update(rationalized=0, rationalized_problems=0)
    ctx.files.write_samples(out, "rationalize", kept)
    log.info("rationalize: %d failed problems, %d rationales kept (%s)", len(failed), len(kept),
             ", ".join(f"{k}={v}" for k, v in stats.items()))
    return stats


STAGE = Stage("rationalize", run, needs=("verify",))
