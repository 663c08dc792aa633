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
   :class:`fractions.Fraction` (``compare.FastOps``); steps 1 to 3 without SymPy are
   ``triage``. Anything needing SymPy (``equivalence.judge``, with LaTeX parsed by
   ``latex2sympy2_extended`` in ``sympy_values`` and ``latex``, see there why, and values
   compared in ``sympy_equality``) goes to a worker process (``pool``; the worker side is
   ``worker``, which warms up once when it starts: ``warmup``) under a hard wall-clock limit
   (``MathConfig.timeout``) and memory limit (``MathConfig.memory_mb``); a worker that overruns
   is killed and replaced. Nothing here uses ``signal.alarm``, so verification works from
   threads, Ray actors and TRL trainers.

Scaling: a batch of at least ``MIN_BATCH_FOR_WORKERS`` completions is triaged on the workers
too, a chunk per job, so both halves of the work spread over ``workers`` processes (a smaller
batch is triaged in the calling process); identical (answer, gold) comparisons in a batch, as
sampled answers often are, go to SymPy once.

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
from typing import Any

from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.extract import extract_answer
from starloop.verifiers.math.pool import Job, Outcome, WorkerPool, shared_pool, shutdown_shared_pool
from starloop.verifiers.math.triage import Pending, Row, gold_answer, triage, verdict
from starloop.verifiers.records import REASONS, Problem, Verdict
from starloop.verifiers.registry import VerifyItem, register_verifier

__all__ = ["MathConfig", "count_reasons", "extract_answer", "verify_math", "verify_math_batch"]

VERSION = "1.1"
ANSWER_FORMAT = "Put your final answer in \\boxed{}."
_WORKER_MODULE = "starloop.verifiers.math.equivalence"
_TRIAGE_MODULE = "starloop.verifiers.math.triage"
MIN_BATCH_FOR_WORKERS = 64
MIN_CHUNK, MAX_CHUNK = 16, 512
TRIAGE_TIMEOUT = 60.0  # seconds for one chunk of SymPy-free work (a few ms per completion)


def _options(config: MathConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("timeout", "memory_mb")}


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


def _from_outcome(outcome: Outcome, answer: str, config: MathConfig) -> Verdict:
    if outcome.status == "ok":
        reason, detail = outcome.value
        return verdict(reason, answer, detail)
    if outcome.status == "timeout":
        return Verdict.fail("timeout", answer, f"comparison exceeded the {config.timeout:g}s limit")
    if outcome.status in ("memory", "crashed"):
        return Verdict.fail("timeout", answer, f"comparison hit a resource limit ({outcome.detail})")
    return Verdict.fail("error", answer, f"verifier error: {outcome.detail}")


def _chunks(n: int, workers: int) -> list[range]:
    size = min(MAX_CHUNK, max(MIN_CHUNK, -(-n // (4 * workers))))
    return [range(k, min(k + size, n)) for k in range(0, n, size)]


def _triage_in_workers(pool: WorkerPool, rows: list[Row], config: MathConfig, workers: int) -> list[Verdict | Pending]:
    """:func:`triage` of every row, a chunk per job on the workers; a chunk whose job fails (a
    worker that died or overran) is triaged here instead, so no row is lost."""
    chunks = _chunks(len(rows), workers)
    options = dataclasses.asdict(config)
    outcomes = pool.run((Job(f"{_TRIAGE_MODULE}:triage_chunk", ([rows[k] for k in c], options)) for c in chunks),
                        timeout=max(TRIAGE_TIMEOUT, config.timeout), memory_mb=config.memory_mb, workers=workers)
    out: list[Verdict | Pending] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if outcome.status == "ok" and len(outcome.value) == len(chunk):
            out += outcome.value
        else:
            out += [triage(*rows[k], config) for k in chunk]
    return out


def verify_math_batch(items: Sequence[VerifyItem], config: MathConfig | None = None, workers: int = 1) -> list[Verdict]:
    """Judge many completions on up to ``workers`` processes.

    Both halves of the work run on the workers: the SymPy-free one (:mod:`.triage`) a chunk
    of completions per job when the batch has at least ``MIN_BATCH_FOR_WORKERS`` items (a
    smaller batch, e.g. a single completion, is triaged in the calling process, which is
    faster than a round trip), then one job per distinct (answer, gold) pair that needs SymPy.
    Results are in input order. Bad input (a problem without a gold answer, a completion that
    is not a string) raises before any work starts, naming the problem.
    """
    config = config or MathConfig()
    for item in items:
        _check(item)
    workers = max(1, workers)
    rows: list[Row] = [(it.completion, it.finish_reason, str(it.problem.answer), it.problem.id) for it in items]
    pool = shared_pool([_WORKER_MODULE])
    verdicts: list[Verdict | None] = [None] * len(items)
    waiting: dict[Pending, list[int]] = {}  # identical comparisons are judged once

    def collect(k: int, decided: Verdict | Pending) -> Pending | None:
        if isinstance(decided, Verdict):
            verdicts[k] = decided
            return None
        waiting.setdefault(decided, []).append(k)
        return decided if len(waiting[decided]) == 1 else None

    options = _options(config)
    if len(rows) >= MIN_BATCH_FOR_WORKERS:
        for k, decided in enumerate(_triage_in_workers(pool, rows, config, workers)):
            collect(k, decided)
        jobs: Iterable[Job] = [Job(f"{_WORKER_MODULE}:judge", (a, g, options)) for a, g in waiting]
    else:
        def lazy() -> Iterator[Job]:  # drawn by the pool while it runs: triage overlaps with SymPy
            for k, row in enumerate(rows):
                pending = collect(k, triage(*row, config))
                if pending is not None:
                    yield Job(f"{_WORKER_MODULE}:judge", (*pending, options))
        jobs = lazy()
    outcomes = pool.run(jobs, timeout=config.timeout, memory_mb=config.memory_mb, workers=workers)
    for (answer, gold), outcome in zip(list(waiting), outcomes, strict=True):
        judged = _from_outcome(outcome, answer, config)
        for k in waiting[(answer, gold)]:
            verdicts[k] = judged
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
    gold_answer.cache_clear()
