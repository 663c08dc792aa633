"""Math verifier: read the final answer of a chain-of-thought and compare it with the gold.

Pipeline (each step names the submodules that do it):

1. ``extract.find_answer``: the final answer of the completion: the last ``\\boxed{}``
   (boxes joined by "and"/"," read as a list), ``#### x``, "the answer is x",
   ``**Answer:** x``, or a bare final answer (the scanning of math spans, boxes and
   sentences is in ``spans``). Candidates joined by hedging words ("either 5 or 7", "12, but
   maybe 15") are alternatives; a completion that does not stand by its answer (it
   reconsiders after it and never concludes, says it only "might be", or loops) has none
   (``commitment``). The gold answer goes through the same step (trusted: not checked for
   commitment), so it may be a bare answer or a whole reference solution.
2. ``parse.read_answer``: what kind of answer it is (number, list, tuple, set, interval,
   inequality, equation, assignment ``x = 5`` or ``f^{-1}(x) = 2x+3``, matrix, ratio, text:
   the node types of ``nodes``), with units, currency, ``%`` and degree marks recognised,
   digit grouping (``1,000``, ``1\\,000``, ``14{,}916``) and mixed numbers (``3\\frac{1}{2}``,
   ``3 1/2``) resolved (``normalize``), and everyday forms rewritten (``forms``): repeating
   decimals (``0.\\overline{3}`` is exactly 1/3), the reals (``\\mathbb{R}`` is
   ``(-\\infty, \\infty)``), numbers in ``\\text{}``, thousands of redundant braces.
3. ``compare.compare``: structural comparison. Plain numbers are compared exactly with
   :class:`fractions.Fraction` in the calling process (``compare.FastOps``); anything
   needing SymPy (``equivalence.judge``, with LaTeX parsed by ``latex2sympy2_extended`` in
   ``sympy_values``, see there why, and values compared in ``sympy_equality``) goes to a
   worker process (``pool``; the worker side is ``worker``) under a hard
   wall-clock limit (``MathConfig.timeout``) and memory limit (``MathConfig.memory_mb``); a
   worker that overruns is killed and replaced. Nothing here uses ``signal.alarm``, so
   verification works from threads, Ray actors and TRL trainers.

The options are :class:`MathConfig` (``config``). This module is the verifier itself:
registration as ``math``, :func:`verify_math`, :func:`verify_math_batch` and the worker
control (:func:`start_workers`, :func:`stop_workers`); it never imports SymPy.

Verdict reasons: ``ok``; ``wrong``; ``unparseable`` (no final answer, an empty box, an
unreadable or undefined answer, a hedge such as "14 or 16" when the gold is one value, or an
answer the completion does not commit to); ``truncated``
(``finish_reason == "length"``: the completion was cut off, so its trace never finished
and it is neither trained on nor counted as wrong); ``timeout`` (the time or memory limit
was hit, or an exact value would be astronomically large, e.g. ``9^{9^{9^9}}``); ``error``
(the gold answer could not be read, or is undefined: ``\\frac{1}{0}``).

Exactness: two exact values are equal only if they are equal exactly (``1/2004!`` is not
``1/2006!``). A decimal written by the model is not an exact value: ``0.333`` matches ``1/3``
only under a configured tolerance (``float_rounding`` or ``rel_tol``). An undefined value (a
division by zero, ``\\infty - \\infty``) equals nothing, not even itself.

Inequalities and sets: a set written as an interval or a union (``(-\\infty, -2) \\cup (3,
\\infty)``, or ``x \\in`` one) answers a gold inequality that describes it (``x < -2`` or
``x > 3``), and two inequalities (compound ones included) match when they describe the same
set of the same variable. Open and closed ends must agree, and so must the variable where both
sides name one (``y \\in (1, 2)`` does not answer ``1 < x < 2``). The converse, an inequality for
a gold interval, is accepted only with ``relation_matches_set``, and the default stays off:
an interval gold almost always comes from a problem that asks for interval notation ("express
your answer in interval notation"), an inequality then does not give the answer in the form
asked for, and the reference graders agree (Math-Verify's ``allow_set_relation_comp`` is off by
default; the public benchmark labels ``-2 \\le x \\le 7`` for ``x \\in [-2, 7]`` not equivalent
under that setting). With the option on, the inequality must describe exactly the gold set.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from starloop.verifiers.math.compare import FastOps, Undecided, compare
from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.extract import extract_answer, find_answer
from starloop.verifiers.math.nodes import Node, Unreadable
from starloop.verifiers.math.parse import read_answer
from starloop.verifiers.math.pool import Job, Outcome, shared_pool, shutdown_shared_pool
from starloop.verifiers.records import REASONS, Problem, Verdict
from starloop.verifiers.registry import VerifyItem, register_verifier

__all__ = ["MathConfig", "count_reasons", "extract_answer", "verify_math", "verify_math_batch"]

VERSION = "1.1"
ANSWER_FORMAT = "Put your final answer in \\boxed{}."
_WORKER_MODULE = "starloop.verifiers.math.equivalence"


def _options(config: MathConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("timeout", "memory_mb")}


@lru_cache(maxsize=4096)
def _gold(answer: str) -> tuple[str, list[Node] | None, str]:
    """The gold answer text, its structure (None if unreadable) and why it is unreadable."""
    found = find_answer(answer, trusted=True).answer
    text = found if found else answer.strip()
    try:
        return text, read_answer(text), ""
    except (Unreadable, RecursionError) as exc:
        return text, None, str(exc)


def check_problem(problem: Problem) -> None:
    """A math problem needs a gold answer."""
    if not isinstance(problem, Problem):
        raise TypeError(f"math verifier expects a Problem, got {type(problem).__name__}")
    if problem.answer is None or not str(problem.answer).strip():
        raise ValueError(f"math problem {problem.id!r} has no gold answer")


def _check(item: VerifyItem) -> None:
    check_problem(item.problem)
    problem = item.problem
    if not isinstance(item.completion, str):
        raise TypeError(
            f"completion for math problem {problem.id!r} must be a str, got {type(item.completion).__name__}"
        )


def _in_process(item: VerifyItem, config: MathConfig) -> Verdict | tuple[str, str]:
    """A verdict decided without SymPy, or the (answer, gold) pair a worker must judge."""
    extraction = find_answer(item.completion)
    answer = extraction.answer
    if item.finish_reason == "length":
        return Verdict.fail("truncated", answer or None, "cut off by the token limit before finishing")
    if not answer:
        return Verdict.fail("unparseable", None, extraction.detail or "no final answer found")
    gold_text, golds, why = _gold(item.problem.answer)
    if golds is None:
        return Verdict.fail("error", answer, f"gold answer of problem {item.problem.id!r} unreadable: {why}")
    try:
        preds = read_answer(answer)
    except (Unreadable, RecursionError) as exc:
        return Verdict.fail("unparseable", answer, f"answer unreadable: {exc}")
    try:
        reason, detail = compare(preds, golds, FastOps(config), config)
    except Undecided:
        return answer, gold_text
    return _verdict(reason, answer, detail)


def _verdict(reason: str, answer: str, detail: str) -> Verdict:
    if reason == "ok":
        return Verdict.ok(answer, detail)
    return Verdict.fail(reason, answer, detail)  # type: ignore[arg-type]


def _from_outcome(outcome: Outcome, answer: str, config: MathConfig) -> Verdict:
    if outcome.status == "ok":
        reason, detail = outcome.value
        return _verdict(reason, answer, detail)
    if outcome.status == "timeout":
        return Verdict.fail("timeout", answer, f"comparison exceeded the {config.timeout:g}s limit")
    if outcome.status in ("memory", "crashed"):
        return Verdict.fail("timeout", answer, f"comparison hit a resource limit ({outcome.detail})")
    return Verdict.fail("error", answer, f"verifier error: {outcome.detail}")


def verify_math_batch(items: Sequence[VerifyItem], config: MathConfig | None = None, workers: int = 1) -> list[Verdict]:
    """Judge many completions; SymPy comparisons run on up to ``workers`` processes.

    Results are in input order. Bad input (a problem without a gold answer, a completion
    that is not a string) raises before any work starts, naming the problem.
    """
    config = config or MathConfig()
    for item in items:
        _check(item)
    verdicts: list[Verdict | None] = [None] * len(items)
    waiting: list[tuple[int, str]] = []
    options = _options(config)

    def jobs() -> Iterator[Job]:
        # Drawn lazily by the pool: the in-process work overlaps with the workers'.
        for k, item in enumerate(items):
            decided = _in_process(item, config)
            if isinstance(decided, Verdict):
                verdicts[k] = decided
            else:
                answer, gold_text = decided
                waiting.append((k, answer))
                yield Job(f"{_WORKER_MODULE}:judge", (answer, gold_text, options))

    pool = shared_pool([_WORKER_MODULE])
    outcomes = pool.run(jobs(), timeout=config.timeout, memory_mb=config.memory_mb, workers=max(1, workers))
    for (k, answer), outcome in zip(waiting, outcomes, strict=True):
        verdicts[k] = _from_outcome(outcome, answer, config)
    assert all(v is not None for v in verdicts)
    return verdicts  # type: ignore[return-value]


@register_verifier(
    "math", version=VERSION, config_cls=MathConfig, answer_format=ANSWER_FORMAT, batch_fn=verify_math_batch,
    check_problem=check_problem,
)
def verify_math(
    completion: str, problem: Problem, *, finish_reason: str | None = None, config: MathConfig | None = None
) -> Verdict:
    """Judge one completion against ``problem.answer`` (hang-proof: see the module docstring)."""
    return verify_math_batch([VerifyItem(completion, problem, finish_reason)], config, 1)[0]


def count_reasons(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many verdicts have each reason (every reason present, zeros included)."""
    counts = Counter(v.reason for v in verdicts)
    return {reason: counts.get(reason, 0) for reason in REASONS}


def start_workers(n: int = 1) -> None:
    """Start ``n`` verification workers now instead of on first use (e.g. before timing)."""
    shared_pool([_WORKER_MODULE]).start(n)


def stop_workers() -> None:
    """Stop the verification workers and forget cached gold answers (new ones start on demand)."""
    shutdown_shared_pool([_WORKER_MODULE])
    _gold.cache_clear()
