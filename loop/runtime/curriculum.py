"""A curriculum over the pool: problems join by level (``curriculum.key`` of their ``meta``; the arithmetic
task's ``level`` is the number of operands), the next level when the model solves enough of the current one.

The level of iteration ``it`` is decided from the run directory alone (the verified samples of the
iterations before it), so a resumed or redone run replays the same curriculum: it starts at the lowest
level, and after each iteration in which at least ``curriculum.threshold`` of the sampled problems of
the current level got a verified sample, the next level joins (one per iteration). Earlier levels stay in
the pool (``keep_previous``). A problem without the key (a synthesized one) is always in the pool. With
pseudo-labels, "verified" means: agrees with the problem's pseudo-label (the only check training may use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starloop.loop.config import CurriculumConfig
from starloop.loop.records import Sample
from starloop.verifiers.records import Problem


def _order(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def levels(problems: Sequence[Problem], key: str) -> list[Any]:
    """The distinct levels of ``problems``, easiest (lowest) first."""
    return sorted({p.meta[key] for p in problems if key in p.meta}, key=_order)


def solved_share(samples: Sequence[Sample], level_of: dict[str, Any], level: Any,
                 drawn: Sequence[Sample] | None = None) -> float | None:
    """Share of the sampled problems of ``level`` (those of ``drawn``, default ``samples``) with a verified sample
    in ``samples`` (None: none of them was sampled). Problems the label stage left without a pseudo-label have no
    verified samples: they count as sampled, not solved."""
    sampled = {s.problem_id for s in (samples if drawn is None else drawn) if level_of.get(s.problem_id) == level}
    if not sampled:
        return None
    solved = {s.problem_id for s in samples if s.problem_id in sampled and s.correct}
    return len(solved) / len(sampled)


def current_level(problems: Sequence[Problem], cfg: CurriculumConfig, iteration: int,
                  verified: Callable[[int], list[Sample]],
                  drawn: Callable[[int], list[Sample]] | None = None) -> tuple[int, list[float | None]]:
    """(index into :func:`levels` of iteration ``iteration``, the solved share of each earlier iteration);
    ``verified(j)``: iteration j's verified samples, ``drawn(j)``: all it sampled (default: the verified)."""
    order = levels(problems, cfg.key)
    level_of = {p.id: p.meta.get(cfg.key) for p in problems}
    at, history = 0, []
    for j in range(1, iteration):
        share = solved_share(verified(j), level_of, order[at], drawn(j) if drawn else None) if order else None
        history.append(share)
        if share is not None and share >= cfg.threshold and at + 1 < len(order):
            at += 1
    return at, history


def curriculum_pool(problems: Sequence[Problem], cfg: CurriculumConfig, iteration: int,
                    verified: Callable[[int], list[Sample]],
                    drawn: Callable[[int], list[Sample]] | None = None) -> tuple[list[Problem], dict[str, Any]]:
    """The problems iteration ``iteration`` samples from, and what the curriculum decided (for the stage's stats)."""
    order = levels(problems, cfg.key)
    if not order:
        return list(problems), {"level": None}
    at, history = current_level(problems, cfg, iteration, verified, drawn)
    allowed = set(order[: at + 1]) if cfg.keep_previous else {order[at]}
    pool = [p for p in problems if cfg.key not in p.meta or p.meta[cfg.key] in allowed]
    return pool, {"level": order[at], "levels": len(order), "pool": len(pool),
                  "solved_share_before": history[-1] if history else None}
