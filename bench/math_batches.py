"""Synthetic verification batches shaped like a rejection-sampling iteration (for bench/verify_math.py).

Two workloads, generated deterministically from a seed (nothing is downloaded):

- ``gsm8k``: GSM8K-like chains of thought with integer answers. Each problem has 8 sampled
  completions: a few sentences of worked arithmetic ending in ``#### N``, ``The answer is N.``
  or ``\\boxed{N}``; answers written as ``1,234``, ``$1,234`` or ``1234.00`` now and then; about
  half right, some wrong, some with no final answer, a few cut off (``finish_reason=length``).
- ``math``: MATH-like completions with LaTeX answers (fractions, radicals, multiples of pi,
  polynomials, intervals, ordered pairs, sets, matrices, degrees): each problem's 8 samples mix
  the gold in another equivalent form (``\\dfrac{6}{8}`` for ``\\frac{3}{4}``, ``\\sqrt{8}`` for
  ``2\\sqrt{2}``, a factored for an expanded polynomial...), the gold itself, decimals (equal only when exact), wrong
  values and unboxed endings, with answers repeated across samples as sampled answers are.

Every item carries whether it is expected to verify (``expected``), so a run also checks the
verdicts, not only the speed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Case:
    completion: str
    gold: str
    expected: bool
    finish_reason: str | None = None


_WORDS = ("apples", "pages", "marbles", "tickets", "dollars", "minutes", "cookies", "stickers")


def _steps(rng: random.Random, answer: int) -> str:
    a = rng.randint(2, 60)
    b = rng.randint(2, 12)
    thing = rng.choice(_WORDS)
    lines = [f"She starts with {a} {thing} and buys {b} packs of {a} more.",
             f"That is {b} * {a} = {a * b} {thing}.",
             f"Together she has {a} + {a * b} = {a + a * b} {thing}."]
    lines += [f"After giving some away she keeps {answer} {thing}."] * rng.randint(1, 3)
    return " ".join(lines)


def _write_int(rng: random.Random, n: int) -> str:
    r = rng.random()
    if n >= 1000 and r < 0.15:
        return f"{n:,}"
    if r < 0.2:
        return f"${n}"
    if r < 0.25:
        return f"{n}.00"
    return str(n)


def gsm8k(n_items: int, seed: int = 0, samples: int = 8) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < n_items:
        gold = rng.randint(1, 5000)
        for _ in range(samples):
            r = rng.random()
            value = gold if r < 0.5 else gold + rng.choice((-10, -2, -1, 1, 3, 100))
            body = _steps(rng, value)
            ending = rng.random()
            if r > 0.95:
                cases.append(Case(body + " So the total is", str(gold), False, "length"))
                continue
            if r > 0.9:
                cases.append(Case(body + " I am not sure how to finish this.", str(gold), False))
                continue
            shown = _write_int(rng, value)
            if ending < 0.4:
                text = f"{body}\n#### {shown}"
            elif ending < 0.7:
                text = f"{body} The answer is {shown}."
            else:
                text = f"{body} So the final answer is $\\boxed{{{shown.lstrip('$')}}}$."
            cases.append(Case(text, str(gold), value == gold))
    return cases[:n_items]


def _frac(f: Fraction) -> str:
    if f.denominator == 1:
        return str(f.numerator)
    sign = "-" if f < 0 else ""
    return f"{sign}\\frac{{{abs(f.numerator)}}}{{{f.denominator}}}"


def _math_problem(rng: random.Random) -> tuple[str, list[tuple[str, bool]]]:
    """A gold answer and a pool of (answer text, equivalent?) a model might write for it."""
    kind = rng.randrange(9)
    if kind == 0:
        f = Fraction(rng.randint(1, 40), rng.randint(2, 40)) or Fraction(1, 2)
        k = rng.randint(2, 4)
        return _frac(f), [(_frac(f), True), (f"\\dfrac{{{f.numerator * k}}}{{{f.denominator * k}}}", True),
                          (f"{float(f):.3f}", Fraction(f"{float(f):.3f}") == f), (_frac(f + 1), False), (f"{f.numerator}/{f.denominator}", True)]
    if kind == 1:
        a, b = rng.randint(2, 9), rng.choice((2, 3, 5, 6, 7))
        return f"{a}\\sqrt{{{b}}}", [(f"\\sqrt{{{a * a * b}}}", True), (f"{a}\\sqrt{{{b}}}", True),
                                      (f"{a + 1}\\sqrt{{{b}}}", False), (f"\\sqrt{{{a * b}}}", False)]
    if kind == 2:
        p, q = rng.randint(1, 9), rng.randint(2, 12)
        return f"\\frac{{{p}\\pi}}{{{q}}}", [(f"\\frac{{{p}}}{{{q}}}\\pi", True), (f"\\frac{{{p}\\pi}}{{{q}}}", True),
                                            (f"\\frac{{{p + 1}\\pi}}{{{q}}}", False), (f"{p / q * 3.14159:.4f}", False)]
    if kind == 3:
        r1, r2 = rng.randint(-9, 9), rng.randint(-9, 9)
        expanded = f"x^2 {'-' if r1 + r2 > 0 else '+'} {abs(r1 + r2)}x {'+' if r1 * r2 >= 0 else '-'} {abs(r1 * r2)}"
        return expanded, [(f"(x - ({r1}))(x - ({r2}))", True), (expanded, True),
                          (f"(x + ({r1}))(x - ({r2}))", r1 == 0), (f"x^2 + {abs(r1) + 1}", False)]
    if kind == 4:
        lo, hi = sorted(rng.sample(range(-20, 20), 2))
        return f"[{lo}, {hi})", [(f"[{lo},{hi})", True), (f"\\left[{lo}, {hi}\\right)", True),
                                 (f"({lo}, {hi})", False), (f"[{lo}, {hi}]", False)]
    if kind == 5:
        x, y = rng.randint(-9, 9), rng.randint(-9, 9)
        return f"({x}, {y})", [(f"({x},{y})", True), (f"\\left({x}, {y}\\right)", True), (f"({y}, {x})", x == y),
                               (f"({x}, {y + 1})", False)]
    if kind == 6:
        vals = sorted(rng.sample(range(-9, 10), 3))
        return "\\{" + ", ".join(map(str, vals)) + "\\}", [
            ("\\{" + ", ".join(map(str, reversed(vals))) + "\\}", True), (", ".join(map(str, vals)), True),
            ("\\{" + ", ".join(map(str, vals[:2])) + "\\}", False)]
    if kind == 7:
        a, b, c, d = (rng.randint(-5, 5) for _ in range(4))
        m = f"\\begin{{pmatrix}} {a} & {b} \\\\ {c} & {d} \\end{{pmatrix}}"
        return m, [(m, True), (f"\\begin{{bmatrix}} {a} & {b} \\\\ {c} & {d} \\end{{bmatrix}}", True),
                   (f"\\begin{{pmatrix}} {a} & {c} \\\\ {b} & {d} \\end{{pmatrix}}", b == c)]
    deg = rng.choice((30, 45, 60, 72, 120, 135, 150))
    return f"{deg}^\\circ", [(f"{deg}^\\circ", True), (f"{deg}", True), (f"{deg + 15}^\\circ", False)]


def math_style(n_items: int, seed: int = 0, samples: int = 8) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < n_items:
        gold, pool = _math_problem(rng)
        for _ in range(samples):
            if rng.random() < 0.06:
                cases.append(Case("We simplify the expression step by step, but the result is unclear.", gold, False))
                continue
            answer, ok = rng.choice(pool)
            lead = rng.choice(("Simplifying, we get", "Therefore,", "Combining the cases,", "Hence"))
            cases.append(Case(f"{lead} the result follows. The final answer is $\\boxed{{{answer}}}$.", gold, ok))
    return cases[:n_items]
