"""The built-in demo task: multi-step integer arithmetic with worked rationales.

A problem is a chain like ``23+45-12+30``; its level is the number of operands. The worked
rationale rewrites the chain one operation at a time, left to right::

    =68-12+30
    =56+30
    =86
    #### 86

Everything is generated deterministically from ``(split, seed)``. Splits are disjoint by
construction: every expression is assigned to exactly one split by a hash of its text, so the
held-out ``eval`` split can never contain a training or seed expression, whatever the seeds,
levels and sizes (see :func:`split_of`); the shares must be the same for all splits of a run.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from starloop.loop.config import ConfigError, DatasetConfig, build
from starloop.loop.tasks import register_adapter
from starloop.verifiers.registry import register_verifier
from starloop.verifiers.types import Problem, Verdict

SPLITS = ("train", "eval", "seed")


@dataclass
class ArithmeticOptions:
    split: str = "train"
    """train (answers only), eval (held out), or seed (worked rationales for the seed model)."""
    levels: list[int] = field(default_factory=lambda: [3, 4])
    """Numbers of operands to generate."""
    per_level: int = 200
    counts: dict[str, int] = field(default_factory=dict)
    """Problems per level for some levels (level -> count), overriding ``per_level`` for those."""
    max_operand: int = 99
    ops: str = "+-"
    nonnegative: bool = True
    """Keep every intermediate result >= 0 (shorter numbers, easier for small models)."""
    eval_share: float = 0.2
    """Share of the expression space reserved for the eval split (by hash)."""
    seed_share: float = 0.2
    """Share of the expression space reserved for the seed split (by hash)."""
    seed: int | None = None
    """Draw with this seed instead of the run's (e.g. ``data.real`` replaying the seed set of a seed
    model built with a fixed seed)."""
    check_steps: bool = True
    """Verify every step of the worked solution (verifier ``arithmetic``), not only the final
    answer (verifier ``math``). With small numbers a wrong chain often ends on the right answer
    by chance; only step-checked traces are sound to train on."""


def split_of(expr: str, eval_share: float, seed_share: float) -> str:
    """The split an expression belongs to: a pure function of its text."""
    h = int.from_bytes(hashlib.sha256(expr.encode()).digest()[:8], "big") / 2**64
    return "eval" if h < eval_share else "seed" if h < eval_share + seed_share else "train"


def evaluate_chain(operands: list[int], ops: list[str]) -> list[int]:
    """Running results after each operation."""
    acc, out = operands[0], []
    for op, x in zip(ops, operands[1:], strict=True):
        acc = acc + x if op == "+" else acc - x if op == "-" else acc * x
        out.append(acc)
    return out


def render(operands: list[int], ops: list[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:], strict=True))


def rationale(operands: list[int], ops: list[str]) -> str:
    """The worked solution: the chain rewritten one operation at a time, then ``#### answer``."""
    results = evaluate_chain(operands, ops)
    lines = [f"={render([r, *operands[k + 2:]], ops[k + 1:])}" for k, r in enumerate(results)]
    return "\n".join(lines) + f"\n#### {results[-1]}"


def _random_chain(rng: random.Random, n: int, o: ArithmeticOptions) -> tuple[list[int], list[str]]:
    while True:
        operands = [rng.randint(0, o.max_operand) for _ in range(n)]
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
        tries = 0
        count = 0
        want = o.counts.get(str(level), o.per_level)
        while count < want:
            tries += 1
            if tries > 200 * want:
                if at_most:
                    break
                raise ValueError(f"cannot draw {want} distinct level-{level} problems for {o.split}")
            operands, ops = _random_chain(rng, level, o)
            expr = render(operands, ops)
            if expr in seen or split_of(expr, o.eval_share, o.seed_share) != o.split:
                continue
            seen.add(expr)
            count += 1
            rows.append(
                {
                    "id": f"{o.split}-L{level}-{count:05d}",
                    "expr": expr,
                    "answer": str(evaluate_chain(operands, ops)[-1]),
                    "level": level,
                    "rationale": rationale(operands, ops),
                }
            )
    return rows


_CHAIN = re.compile(r"^(-?\d+)((?:[-+*]\d+)*)$")


def parse_chain(text: str) -> tuple[list[int], list[str]] | None:
    """Operands and operators of a chain like ``23+45-12``; None if ``text`` is not one."""
    m = _CHAIN.match(text)
    if m is None:
        return None
    tail = re.findall(r"([-+*])(\d+)", m.group(2))
    return [int(m.group(1)), *(int(x) for _, x in tail)], [op for op, _ in tail]


@register_verifier("arithmetic", version="1", answer_format="Rewrite the chain one operation at a time, then '#### answer'.")
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


def options_from(cfg: DatasetConfig) -> ArithmeticOptions:
    return build(ArithmeticOptions, dict(cfg.options), prefix=f"data.{cfg.source}.options.")


@register_adapter("arithmetic")
def arithmetic(cfg: DatasetConfig, seed: int) -> list[Problem]:
    o = options_from(cfg)
    rows = generate(o, seed)
    return [
        Problem(id=r["id"], task="arithmetic" if o.check_steps else "math", prompt=r["expr"], answer=r["answer"],
                meta={"level": r["level"]})
        for r in rows
    ]
