"""The ``arithmetic`` verifier: step-by-step checking of worked integer arithmetic chains, the
demo task's verifier (``starloop.loop.tasks.arithmetic`` makes the problems).

A problem's prompt is a chain like ``23+45-12+30``; a worked solution rewrites the chain one
operation at a time, left to right, then gives the answer::

    =68-12+30
    =56+30
    =86
    #### 86

Every line is checked, not only the answer: with small numbers a wrong chain often ends on the
right answer by chance, and only step-checked traces are sound to train on. Registered through
the ``starloop.verifiers`` entry-point group, as a third-party verifier would be.
"""

from __future__ import annotations

import re
from typing import Any

from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import register_verifier

ANSWER_FORMAT = "Rewrite the chain one operation at a time, then '#### answer'."
_CHAIN = re.compile(r"^(-?\d+)((?:[-+*]\d+)*)$")


def evaluate_chain(operands: list[int], ops: list[str]) -> list[int]:
    """Running results after each operation."""
    acc, out = operands[0], []
    for op, x in zip(ops, operands[1:], strict=True):
        acc = acc + x if op == "+" else acc - x if op == "-" else acc * x
        out.append(acc)
    return out


def render(operands: list[int], ops: list[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:], strict=True))


def rationale(operands: list[int], ops: list[str], width: int = 0) -> str:
    """The worked solution: the chain rewritten one operation at a time, then ``#### answer``.

    ``width`` > 0 right-aligns every line to that many characters (leading spaces, which the verifier ignores): the
    rest of the chain then keeps its columns from line to line, so a model copies it from the line above at one
    fixed distance, whatever the chain's length (a fixed distance is what a transformer carries over to chains
    longer than it was trained on)."""
    results = evaluate_chain(operands, ops)
    lines = [f"={render([r, *operands[k + 2:]], ops[k + 1:])}" for k, r in enumerate(results)]
    return "\n".join(line.rjust(width) for line in [*lines, f"#### {results[-1]}"])


def parse_chain(text: str) -> tuple[list[int], list[str]] | None:
    """Operands and operators of a chain like ``23+45-12``; None if ``text`` is not one."""
    m = _CHAIN.match(text)
    if m is None:
        return None
    tail = re.findall(r"([-+*])(\d+)", m.group(2))
    return [int(m.group(1)), *(int(x) for _, x in tail)], [op for op, _ in tail]


def check_problem(problem: Problem) -> None:
    """An arithmetic problem's prompt is a chain and it has a gold answer."""
    if parse_chain(problem.prompt.strip()) is None:
        raise ValueError(f"problem {problem.id}: prompt {problem.prompt!r} is not an arithmetic chain")
    if problem.answer is None:
        raise ValueError(f"arithmetic problem {problem.id!r} has no gold answer")


@register_verifier("arithmetic", version="1", answer_format=ANSWER_FORMAT, check_problem=check_problem)
def verify_steps(completion: str, problem: Problem, *, finish_reason: str | None = None, config: Any = None) -> Verdict:
    """Every line must be the previous chain with its first operation done, and the last line
    ``#### x`` with x the gold answer: the reasoning is checked, not only the answer."""
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    final = lines[-1] if lines else ""
    if not final.startswith("####"):
        return Verdict.fail("truncated" if finish_reason == "length" else "unparseable")
    got = final[4:].strip()
    chain = parse_chain(problem.prompt.strip())
    if chain is None:
        raise ValueError(f"problem {problem.id}: prompt {problem.prompt!r} is not an arithmetic chain")
    for k, line in enumerate(lines[:-1], start=1):
        operands, ops = chain
        if not ops:
            return Verdict.fail("wrong", got, f"line {k}: the chain was already done")
        step = render([evaluate_chain(operands[:2], ops[:1])[0], *operands[2:]], ops[1:])
        if line != "=" + step:
            return Verdict.fail("wrong", got, f"line {k}: expected ={step}, got {line}")
        chain = parse_chain(step)
    if chain[1]:
        return Verdict.fail("wrong", got, "the chain was not finished")
    if got != str(chain[0][0]) or got != str(problem.answer):
        return Verdict.fail("wrong", got, f"answer {got}, chain ends at {chain[0][0]}")
    return Verdict.ok(got)
