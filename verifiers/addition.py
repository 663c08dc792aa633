"""The ``addition`` verifier: multi-digit addition worked column by column on a scratchpad, the arithmetic task
of STaR (Zelikman et al., 2022, after Nye et al.'s scratchpads); ``starloop.loop.tasks.addition`` makes the
problems.

A problem's prompt is a sum like ``4821+3795``; its worked solution takes one column at a time, from the right:
each line is what is left of both numbers, the carry, and the digits of the result found so far; the last line
is the result, then the answer::

    =482+379 c0 6
    =48+37 c1 16
    =4+3 c1 616
    =8616
    #### 8616

Every line carries the result's digits found so far, so the answer (STaR's hint) tells a model the digits of
every line but not the rest of it: what is left of the numbers and the carries must still come out right.
Every line is checked against the one step the sum allows (there is exactly one worked solution), not only the
answer. Registered through the ``starloop.verifiers`` entry-point group, as a third-party verifier would be.
"""

from __future__ import annotations

import re
from typing import Any

from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import register_verifier

ANSWER_FORMAT = "Add column by column from the right (what is left, the carry, the digits so far), then '#### answer'."
_SUM = re.compile(r"^(\d+)\+(\d+)$")


def parse_sum(text: str) -> tuple[str, str] | None:
    """The two numbers of a sum like ``4821+3795`` (as digit strings); None if ``text`` is not one."""
    m = _SUM.match(text.strip())
    return None if m is None else (m.group(1), m.group(2))


def steps(a: str, b: str) -> list[str]:
    """The worked lines of ``a + b`` (digit strings), column by column from the right, without the answer line:
    ``={rest of a}+{rest of b} c{carry} {digits so far}`` while digits are left, then ``={result}``."""
    carry, digits, lines = 0, "", []
    while a or b:
        s = (int(a[-1]) if a else 0) + (int(b[-1]) if b else 0) + carry
        carry, digits = s // 10, str(s % 10) + digits
        a, b = a[:-1], b[:-1]
        if a or b:
            lines.append(f"={a}+{b} c{carry} {digits}")
    lines.append(f"={'1' if carry else ''}{digits}")
    return lines


def scratchpad(a: str, b: str) -> str:
    """The worked solution of ``a + b``: :func:`steps`, then ``#### answer``."""
    lines = steps(a, b)
    return "\n".join([*lines, f"#### {lines[-1][1:]}"])


def check_problem(problem: Problem) -> None:
    """An addition problem's prompt is a sum of two numbers and it has a gold answer."""
    if parse_sum(problem.prompt) is None:
        raise ValueError(f"problem {problem.id}: prompt {problem.prompt!r} is not a sum of two numbers like 48+37")
    if problem.answer is None:
        raise ValueError(f"addition problem {problem.id!r} has no gold answer")


@register_verifier("addition", version="1", answer_format=ANSWER_FORMAT, check_problem=check_problem)
def verify_scratchpad(completion: str, problem: Problem, *, finish_reason: str | None = None,
                      config: Any = None) -> Verdict:
    """Every line must be the sum's next column step, and the last line ``#### x`` with x the gold answer: the
    reasoning is checked, not only the answer."""
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    final = lines[-1] if lines else ""
    if not final.startswith("####"):
        return Verdict.fail("truncated" if finish_reason == "length" else "unparseable")
    got = final[4:].strip()
    numbers = parse_sum(problem.prompt)
    if numbers is None:
        raise ValueError(f"problem {problem.id}: prompt {problem.prompt!r} is not a sum of two numbers like 48+37")
    expected = steps(*numbers)
    for k, line in enumerate(lines[:-1], start=1):
        if k > len(expected):
            return Verdict.fail("wrong", got, f"line {k}: the sum was already done")
        if line != expected[k - 1]:
            return Verdict.fail("wrong", got, f"line {k}: expected {expected[k - 1]}, got {line}")
    if len(lines) - 1 < len(expected):
        return Verdict.fail("wrong", got, f"the sum was not finished (line {len(lines)}: expected {expected[len(lines) - 1]})")
    if got != expected[-1][1:] or got != str(problem.answer).strip():
        return Verdict.fail("wrong", got, f"answer {got}, the columns give {expected[-1][1:]}")
    return Verdict.ok(got)
