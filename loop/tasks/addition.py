"""The rationalization demo's task: multi-digit addition worked column by column (the arithmetic task of STaR).

A problem is a sum like ``48213+37950`` of two numbers with the same number of digits, its level; its worked
solution (``meta["solution"]``, see ``starloop.verifiers.addition``) takes one column at a time from the right and
carries the result's digits found so far on every line, so the answer (STaR's hint) tells a model part of every
line. Splits are disjoint by construction, as in the ``arithmetic`` task: every sum belongs to one split by a hash
of its text (:func:`starloop.loop.tasks.arithmetic.split_of`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from starloop.loop.config import ConfigError, DatasetConfig, build
from starloop.loop.tasks.arithmetic import SPLITS, SplitOptions, draw_distinct, split_of
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.addition import scratchpad
from starloop.verifiers.records import Problem


@dataclass
class AdditionOptions(SplitOptions):
    """A split's sums: ``levels`` are numbers of digits (both numbers have as many)."""


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def generate(o: AdditionOptions, seed: int, *, at_most: bool = False) -> list[dict[str, Any]]:
    """Rows {id, expr, answer, level, rationale} for split ``o.split``, deterministic in ``seed`` (``o.seed``
    instead, when set). A level with too few sums in the split raises, unless ``at_most``."""
    if o.split not in SPLITS:
        raise ConfigError(f"addition split must be one of {SPLITS}, got {o.split!r}")
    if any(level < 1 for level in o.levels):
        raise ConfigError(f"addition levels are numbers of digits (1 or more), got {o.levels}")
    stream = {"train": 1, "eval": 2, "seed": 3}[o.split]
    seed = o.seed if o.seed is not None else seed
    rows, seen = [], set()
    for level in o.levels:
        rng = random.Random(f"addition-{seed}-{stream}-{level}")

        def draw(level: int = level, rng: random.Random = rng) -> tuple[str, tuple[str, str]]:
            a, b = str(_number(rng, level)), str(_number(rng, level))
            return f"{a}+{b}", (a, b)

        want = o.counts.get(str(level), o.per_level)
        drawn = draw_distinct(draw, want, seen, lambda expr: split_of(expr, o.eval_share, o.seed_share) == o.split,
                              max_tries=200 * want, at_most=at_most, what=f"{level}-digit sums for {o.split}")
        for count, (expr, (a, b)) in enumerate(drawn, 1):
            rows.append({"id": f"{o.split}-D{level}-{count:05d}", "expr": expr, "answer": str(int(a) + int(b)),
                         "level": level, "rationale": scratchpad(a, b)})
    return rows


def options_from(cfg: DatasetConfig) -> AdditionOptions:
    return build(AdditionOptions, dict(cfg.options), prefix=f"data.{cfg.source}.options.")


@register_adapter("addition")
def addition(cfg: DatasetConfig, seed: int) -> list[Problem]:
    rows = generate(options_from(cfg), seed)
    return [Problem(id=r["id"], task=cfg.task or "addition", prompt=r["expr"], answer=r["answer"],
                    meta={"level": r["level"], "solution": r["rationale"]}) for r in rows]
