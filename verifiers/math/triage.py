"""The first, SymPy-free half of verifying a math completion: find, read and compare exactly.

:func:`triage` decides every completion it can without SymPy (no final answer, a cut-off
trace, a plain number compared exactly with :class:`fractions.Fraction`...) and returns, for
the rest, the (answer, gold) texts a SymPy worker must judge. It runs in the calling process
for small batches and in the worker processes, a chunk at a time (:func:`triage_chunk`), for
large ones, so that this half scales with the workers too. Pure Python: no SymPy.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from starloop.verifiers.math.compare import FastOps, Undecided, compare
from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.extract import find_answer
from starloop.verifiers.math.nodes import Node, Unreadable
from starloop.verifiers.math.parse import read_answer
from starloop.verifiers.records import Verdict

Pending = tuple[str, str]
"""(answer text, gold text): a comparison left to a SymPy worker."""

Row = tuple[str, "str | None", str, str]
"""What :func:`triage_chunk` needs of one item: (completion, finish_reason, gold answer, problem id)."""


@lru_cache(maxsize=4096)
def gold_answer(answer: str) -> tuple[str, list[Node] | None, str]:
    """The gold answer text, its structure (None if unreadable) and why it is unreadable."""
    found = find_answer(answer, trusted=True).answer
    text = found if found else answer.strip()
    try:
        return text, read_answer(text), ""
    except (Unreadable, RecursionError) as exc:
        return text, None, str(exc)


def verdict(reason: str, answer: str, detail: str) -> Verdict:
    if reason == "ok":
        return Verdict.ok(answer, detail)
    return Verdict.fail(reason, answer, detail)  # type: ignore[arg-type]


def triage(completion: str, finish_reason: str | None, gold: str, problem_id: str,
           config: MathConfig) -> Verdict | Pending:
    """A verdict decided without SymPy, or the (answer, gold) pair a worker must judge."""
    extraction = find_answer(completion)
    answer = extraction.answer
    if finish_reason == "length":
        return Verdict.fail("truncated", answer or None, "cut off by the token limit before finishing")
    if not answer:
        return Verdict.fail("unparseable", None, extraction.detail or "no final answer found")
    gold_text, golds, why = gold_answer(gold)
    if golds is None:
        return Verdict.fail("error", answer, f"gold answer of problem {problem_id!r} unreadable: {why}")
    try:
        preds = read_answer(answer)
    except (Unreadable, RecursionError) as exc:
        return Verdict.fail("unparseable", answer, f"answer unreadable: {exc}")
    try:
        reason, detail = compare(preds, golds, FastOps(config), config)
    except Undecided:
        return answer, gold_text
    return verdict(reason, answer, detail)


def triage_chunk(rows: list[Row], options: dict[str, Any]) -> list[Verdict | Pending]:
    """:func:`triage` of each row (run in a worker; ``options`` are :class:`MathConfig` fields)."""
    config = MathConfig(**options)
    return [triage(completion, finish, gold, pid, config) for completion, finish, gold, pid in rows]
