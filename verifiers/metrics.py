"""pass@k and maj@k over verdicts, and starloop's metric for Hugging Face ``evaluate``.

:func:`pass_at_k` is the unbiased estimator of Chen et al. (2021); :func:`maj_at_k` scores the
most frequent extracted answer among the first k samples (self-consistency). The loop's
evaluate stage uses both; :class:`VerifierMetric` is the same computation over any registered
verifier as an ``evaluate`` metric::

    import evaluate
    from starloop.verifiers import metrics

    metric = evaluate.load(metrics.evaluate_script(), verifier="math", k=[1, 4])
    metric.compute(predictions=[["... \\\\boxed{4}", "... \\\\boxed{5}"]], references=["4"])
    # {'pass@1': 0.5, 'pass@4': ...} (k larger than the samples per problem is left out)

``predictions``: per problem, its sampled completions; ``references``: per problem, the gold
answer (math and the demo's arithmetic) or the code tests (a string of asserts, or a JSON list
of stdin/stdout cases).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import VerifyItem, verify_batch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def maj_at_k(verdicts: Sequence[Verdict | None], k: int) -> float:
    """1.0 if the most frequent extracted answer among the first ``k`` verdicts is correct.

    Verdicts without an extracted answer do not vote; ties go to the answer seen first.
    """
    votes: Counter[str] = Counter()
    correct_of: dict[str, bool] = {}
    for v in verdicts[:k]:
        if v is None or v.extracted is None or v.reason in ("unparseable", "truncated", "error"):
            continue
        votes[v.extracted] += 1
        correct_of.setdefault(v.extracted, v.correct)
    if not votes:
        return 0.0
    best = max(votes, key=lambda a: (votes[a], -list(votes).index(a)))
    return float(correct_of[best])


def _problem(k: int, verifier: str, reference: Any) -> Problem:
    if verifier == "code":
        tests = reference
        if isinstance(reference, str) and reference.lstrip().startswith("["):
            tests = json.loads(reference)
        return Problem(id=str(k), task=verifier, prompt="", tests=tests)
    return Problem(id=str(k), task=verifier, prompt="", answer=str(reference))


def score(predictions: Sequence[Sequence[str]], references: Sequence[Any], *, verifier: str = "math",
          k: Sequence[int] = (1,), options: dict[str, Any] | None = None, workers: int = 1) -> dict[str, float]:
    """Mean pass@k and maj@k over problems, each of its completions judged by ``verifier``."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    items = [VerifyItem(str(c), _problem(i, verifier, ref)) for i, (cs, ref) in enumerate(zip(predictions, references, strict=True))
             for c in cs]
    verdicts = verify_batch(verifier, items, options=options, workers=workers) if items else []
    per_problem: list[list[Verdict]] = []
    at = 0
    for cs in predictions:
        per_problem.append(verdicts[at : at + len(cs)])
        at += len(cs)
    out: dict[str, float] = {}
    n_min = min((len(v) for v in per_problem), default=0)
    for kk in k:
        if kk > n_min or not per_problem:
            continue
        out[f"pass@{kk}"] = sum(pass_at_k(len(v), sum(x.correct for x in v), kk) for v in per_problem) / len(per_problem)
        out[f"maj@{kk}"] = sum(maj_at_k(v, kk) for v in per_problem) / len(per_problem)
    return out


def evaluate_script() -> str:
    """The path of the ``evaluate`` metric script shipped with starloop (``evaluate.load`` takes it)."""
    return str(Path(__file__).with_name("evaluate_metric") / "starloop_verifier.py")
