"""Evaluation on held-out problems: greedy pass@1, sampled pass@k (the unbiased estimator of
Chen et al., 2021) and maj@k, with per-task and per-verdict-reason breakdowns."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from math import comb
from typing import Any

from starloop.loop.types import Sample
from starloop.verifiers.types import Problem


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def maj_at_k(samples: Sequence[Sample], k: int) -> float:
    """1.0 if the most frequent extracted answer among the first ``k`` samples is correct.

    Samples without an extracted answer do not vote; ties go to the answer seen first.
    """
    votes: Counter[str] = Counter()
    correct_of: dict[str, bool] = {}
    for s in samples[:k]:
        v = s.verdict or {}
        ans = v.get("extracted")
        if ans is None or v.get("reason") in ("unparseable", "truncated", "error"):
            continue
        votes[ans] += 1
        correct_of.setdefault(ans, bool(v.get("correct")))
    if not votes:
        return 0.0
    best = max(votes, key=lambda a: (votes[a], -list(votes).index(a)))
    return float(correct_of[best])


def summarize(
    problems: Sequence[Problem],
    sampled: Sequence[Sample],
    greedy: Sequence[Sample] = (),
    ks: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Metrics over ``problems`` from verified samples (``verdict`` set)."""
    by_pid: dict[str, list[Sample]] = defaultdict(list)
    for s in sampled:
        by_pid[s.problem_id].append(s)
    greedy_ok = {s.problem_id: s.correct for s in greedy}
    tasks = sorted({p.task for p in problems})

    def block(ps: Sequence[Problem]) -> dict[str, Any]:
        ids = {p.id for p in ps}
        out: dict[str, Any] = {"problems": len(ps)}
        if greedy:
            out["pass@1"] = sum(greedy_ok.get(p.id, False) for p in ps) / max(1, len(ps))
        if sampled:
            out["pass@k"] = {}
            out["maj@k"] = {}
            for k in ks:
                vals = [pass_at_k(len(by_pid[p.id]), sum(s.correct for s in by_pid[p.id]), k) for p in ps]
                out["pass@k"][str(k)] = sum(vals) / max(1, len(vals))
                out["maj@k"][str(k)] = sum(maj_at_k(by_pid[p.id], k) for p in ps) / max(1, len(ps))
            if not greedy:
                out["pass@1"] = out["pass@k"].get("1", 0.0)
        reasons = Counter((s.verdict or {}).get("reason", "none") for s in [*sampled, *greedy] if s.problem_id in ids)
        total = sum(reasons.values()) or 1
        out["reasons"] = {r: c / total for r, c in sorted(reasons.items())}
        return out

    metrics = block(problems)
    if len(tasks) > 1:
        metrics["per_task"] = {}
        for t in tasks:
            sub = [p for p in problems if p.task == t]
            metrics["per_task"][t] = block(sub)
    levels = sorted({p.meta.get("level") for p in problems if p.meta.get("level") is not None})
    if len(levels) > 1:
        metrics["per_level"] = {}
        for lv in levels:
            sub = [p for p in problems if p.meta.get("level") == lv]
            metrics["per_level"][str(lv)] = block(sub)
    return metrics
