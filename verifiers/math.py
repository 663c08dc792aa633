"""Math verifier (minimal): read the final answer and compare it with the gold answer.

Extraction: the last ``\\boxed{...}``, else ``#### x``, else "the answer is x". Equivalence:
exact rational comparison of numbers. A completion cut off by the token limit with no final
answer is ``truncated``; one with no readable answer is ``unparseable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from starloop.verifiers.registry import register_verifier
from starloop.verifiers.types import Problem, Verdict

VERSION = "0.1"


@dataclass(frozen=True)
class MathConfig:
    timeout: float = 5.0


def _last_boxed(text: str) -> str | None:
    idx = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if idx < 0:
        return None
    i = text.index("{", idx) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


_PATTERNS = [re.compile(r"####\s*([^\n]+)"), re.compile(r"answer is[:\s]*\$?([^\n$]+)", re.I)]


def extract_answer(text: str) -> str | None:
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pat in _PATTERNS:
        found = pat.findall(text)
        if found:
            return found[-1].strip().rstrip(".")
    return None


def _number(s: str) -> Fraction | None:
    s = s.replace(",", "").replace("$", "").strip()
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


@register_verifier("math", version=VERSION, config_cls=MathConfig,
                   answer_format="Put the final answer in \\boxed{}.")
def verify_math(completion: str, problem: Problem, *, finish_reason: str | None = None,
                config: MathConfig | None = None) -> Verdict:
    if problem.answer is None:
        raise ValueError(f"math problem {problem.id!r} has no gold answer")
    pred = extract_answer(completion)
    if pred is None:
        return Verdict.fail("truncated" if finish_reason == "length" else "unparseable")
    a, b = _number(pred), _number(problem.answer)
    if a is not None and b is not None:
        same = a == b
    else:
        same = pred.replace(" ", "") == problem.answer.replace(" ", "")
    return Verdict.ok(pred) if same else Verdict.fail("wrong", pred)
