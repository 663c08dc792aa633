"""The built-in demo task: multi-step integer arithmetic with worked rationales.

A problem is a chain like ``23+45-12+30``; its level is the number of operands; its worked
solution (``meta["solution"]``) rewrites the chain one operation at a time and is what the
``arithmetic`` verifier (``starloop.verifiers.arithmetic``) checks step by step.

Everything is generated deterministically from ``(split, seed)``. Splits are disjoint by
construction: every expression is assigned to exactly one split by a hash of its text, so the
held-out ``eval`` split can never contain a training or seed expression, whatever the seeds,
levels and sizes (see :func:`split_of`); the shares must be the same for all splits of a run.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starloop.loop.config import ConfigError, DatasetConfig, build
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.arithmetic import evaluate_chain, parse_chain, rationale, render
from starloop.verifiers.records import Problem

SPLITS = ("train", "eval", "seed")
T = TypeVar("T")


@dataclass
class SplitOptions:
    """What every generated built-in task (``arithmetic``, ``addition``) is asked for: a split, how many problems of
    which levels, the hash shares that keep the splits disjoint, and a seed of its own."""

    split: str = "train"
    """train (answers only), eval (held out), or seed (worked rationales for the seed model)."""
    levels: list[int] = field(default_factory=lambda: [3, 4])
    """Levels to generate (arithmetic: numbers of operands; addition: numbers of digits)."""
    per_level: int = 200
    counts: dict[str, int] = field(default_factory=dict)
    """Problems per level for some levels (level -> count), overriding ``per_level`` for those."""
    eval_share: float = 0.2
    """Share of the expression space reserved for the eval split (by hash)."""
    seed_share: float = 0.2
    """Share of the expression space reserved for the seed split (by hash)."""
    seed: int | None = None
    """Draw with this seed instead of the run's (e.g. ``data.real`` replaying the seed set of a seed
    model built with a fixed seed)."""


@dataclass
class ArithmeticOptions(SplitOptions):
    max_operand: int = 99
    min_operand: int = 0
    """Operands are drawn from ``min_operand`` to ``max_operand``."""
    ops: str = "+-"
    nonnegative: bool = True
    """Keep every intermediate result >= 0 (shorter numbers, easier for small models)."""
    width: int = 0
    """Right-align every line of the worked solutions to this many characters (see
    ``starloop.verifiers.arithmetic.rationale``); 0: no padding."""
    check_steps: bool = True
    """Verify every step of the worked solution (verifier ``arithmetic``), not only the final
    answer (verifier ``math``). With small numbers a wrong chain often ends on the right answer
    by chance; only step-checked traces are sound to train on."""


def split_of(expr: str, eval_share: float, seed_share: float) -> str:
    """The split an expression belongs to: a pure function of its text."""
    h = int.from_bytes(hashlib.sha256(expr.encode()).digest()[:8], "big") / 2**64
    return "eval" if h < eval_share else "seed" if h < eval_share + seed_share else "train"


def _random_chain(rng: random.Random, n: int, o: ArithmeticOptions) -> tuple[list[int], list[str]]:
    while True:
        operands = [rng.randint(o.min_operand, o.max_operand) for _ in range(n)]
        ops = [rng.choice(o.ops) for _ in range(n - 1)]
        if not o.nonnegative or min(evaluate_chain(operands, ops)) >= 0:
            return operands, ops


def generate(o: ArithmeticOptions, seed: int, *, at_most: bool = False) -> list[dict[str, Any]]:
    """Rows {id, expr, answer, level, rationale} for split ``o.split``, deterministic in ``seed``
    (``o.seed`` instead, when set).

    A level whose share of the expression space is too small for the requested count raises,
    unless ``at_most`` (then the level yields as many distinct problems as were found).
    """
    if o.split not in SPLITS:
        raise ConfigError(f"arithmetic split must be one of {SPLITS}, got {o.split!r}")
    stream = {"train": 1, "eval": 2, "seed": 3}[o.split]
    if o.seed is not None:
        seed = o.seed
    rows, seen = [], set()
    for level in o.levels:
        rng = random.Random(f"{seed}-{stream}-{level}")

        def chain(level: int = level, rng: random.Random = rng) -> tuple[str, tuple[list[int], list[str]]]:
            operands, ops = _random_chain(rng, level, o)
            return render(operands, ops), (operands, ops)

        want = o.counts.get(str(level), o.per_level)
        drawn = draw_distinct(chain, want, seen, lambda expr: split_of(expr, o.eval_share, o.seed_share) == o.split,
                              max_tries=200 * want, at_most=at_most, what=f"level-{level} problems for {o.split}")
        for count, (expr, (operands, ops)) in enumerate(drawn, 1):
            rows.append(
                {
                    "id": f"{o.split}-L{level}-{count:05d}",
                    "expr": expr,
                    "answer": str(evaluate_chain(operands, ops)[-1]),
                    "level": level,
                    "rationale": rationale(operands, ops, o.width),
                }
            )
    return rows


def draw_distinct(draw: Callable[[], tuple[str, T]], want: int, seen: set[str], in_split: Callable[[str], bool],
                  accept: Callable[[T], bool] = lambda item: True, *, max_tries: int, at_most: bool,
                  what: str) -> list[tuple[str, T]]:
    """Up to ``want`` (text, item) pairs from ``draw()`` whose text is new (not in ``seen``, which grows), in this
    split and accepted. More than ``max_tries`` draws raise, unless ``at_most`` (then: as many as were found)."""
    out: list[tuple[str, T]] = []
    tries = 0
    while len(out) < want:
        tries += 1
        if tries > max_tries:
            if at_most:
                break
            raise ValueError(f"cannot draw {want} distinct {what}")
        text, item = draw()
        if text in seen or not in_split(text) or not accept(item):
            continue
        seen.add(text)
        out.append((text, item))
    return out


def reorderings(expr: str, k: int, rng: random.Random) -> list[str]:
    """``expr`` and up to ``k - 1`` distinct reorderings of its terms (a term: an operand with the sign before it),
    the same chain in other words (``label.rewrite: arithmetic``); a chain with a ``*``, or no chain, only itself.

    Each reordering is a random walk of swaps of neighbouring terms, never of an addition followed by a
    subtraction: such a swap never lowers a running result below where either neighbour left it, so a chain
    whose running results are all >= 0 (the task's ``nonnegative`` problems) keeps them >= 0, and its first
    term stays an addition. Nothing is computed: the rewrite knows only that terms commute."""
    parsed = parse_chain(expr)
    if parsed is None or "*" in parsed[1] or not parsed[1]:
        return [expr]
    operands, ops = parsed
    terms = list(zip(["+", *ops], operands, strict=True))
    forms, tries = [expr], 0
    while len(forms) < k and tries < 20 * k:
        tries += 1
        t = list(terms)
        for _ in range(rng.randint(1, 2 * len(t))):
            j = rng.randrange(len(t) - 1)
            if not (t[j][0] == "+" and t[j + 1][0] == "-"):
                t[j], t[j + 1] = t[j + 1], t[j]
        text = render([x for _, x in t], [op for op, _ in t[1:]])
        if text not in forms:
            forms.append(text)
    return forms


def options_from(cfg: DatasetConfig) -> ArithmeticOptions:
    return build(ArithmeticOptions, dict(cfg.options), prefix=f"data.{cfg.source}.options.")


@register_adapter("arithmetic")
def arithmetic(cfg: DatasetConfig, seed: int) -> list[Problem]:
    o = options_from(cfg)
    rows = generate(o, seed)
    return [
        Problem(id=r["id"], task=cfg.task or ("arithmetic" if o.check_steps else "math"), prompt=r["expr"],
                answer=r["answer"],
                meta={"level": r["level"], "solution": r["rationale"]})
        for r in rows
    ]
