"""STaR rationalization: re-ask failed problems with the gold answer as a hint.

Only verified rationales are kept, and they are stored under the original hint-free prompt, so
the model learns to produce the reasoning without the hint. A rationale that merely restates
the hint (mentions it, or has no reasoning besides the answer) is rejected.
"""

from __future__ import annotations

import re

from starloop.loop.config import RationalizeConfig
from starloop.loop.types import Sample
from starloop.verifiers.types import Problem

MIN_REASONING_CHARS = 3
_ANSWER_LINE = re.compile(r"(####.*|\\boxed\{.*\}|the answer is.*)$", re.I | re.M)


def failed_problems(problems: list[Problem], samples: list[Sample]) -> list[Problem]:
    """Problems none of whose samples was verified correct."""
    solved = {s.problem_id for s in samples if s.correct}
    return [p for p in problems if p.id not in solved and p.answer is not None]


def hinted_text(problem: Problem, cfg: RationalizeConfig) -> str:
    return cfg.hint_template.format(prompt=problem.prompt, answer=problem.answer)


def restates_hint(completion: str, answer: str) -> bool:
    """True if the completion leans on the hint instead of reasoning to the answer."""
    if "hint" in completion.lower():
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
        if cfg.reject_restated_hint and restates_hint(s.completion, problems[s.problem_id].answer or ""):
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
