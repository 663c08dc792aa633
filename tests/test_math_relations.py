"""Shortcuts in comparing relations and equations give what SymPy's slow path gives: relations read
directly as intervals or unions (``sympy_values.isolated_interval``) and equation ratios in lowest terms
without ``simplify`` (``equivalence._rational_over_q``)."""

from __future__ import annotations

import random

import sympy

from starloop.verifiers.math.equivalence import _rational_over_q
from starloop.verifiers.math.sympy_values import isolated_interval

X = sympy.Symbol("x", real=True)
OPS = [sympy.StrictLessThan, sympy.LessThan, sympy.StrictGreaterThan, sympy.GreaterThan]


def _side(rng: random.Random) -> sympy.Expr:
    slope = sympy.Rational(rng.randint(-4, 4), rng.randint(1, 3))
    return slope * X + sympy.Rational(rng.randint(-9, 9), rng.randint(1, 4))


def test_linear_relations_are_read_as_the_solvers_interval():
    rng = random.Random(5)
    for _ in range(150):
        rels = [rng.choice(OPS)(_side(rng), _side(rng)) for _ in range(rng.randint(1, 2))]
        if any(r.free_symbols != {X} for r in rels):
            continue  # no variable left (a comparison of numbers): not this reader's case
        quick = isolated_interval(rels, X)
        assert quick is not None and quick == sympy.And(*rels).as_set(), rels


def test_bounds_on_an_absolute_value_are_read_as_the_solvers_set():
    rng = random.Random(3)
    for _ in range(60):
        rels = []
        for _ in range(rng.randint(1, 2)):
            c = sympy.Rational(rng.randint(-3, 6), rng.randint(1, 2))
            op = rng.choice(OPS)
            rel = op(sympy.Abs(X), c) if rng.random() < 0.5 else op(c, sympy.Abs(X))
            rels.append(rel if rng.random() < 0.8 else rng.choice(OPS)(_side(rng), _side(rng)))
        if any(isinstance(r, sympy.logic.boolalg.BooleanAtom) or r.free_symbols != {X} for r in rels):
            continue  # decided without the variable: not this reader's case
        quick = isolated_interval(rels, X)
        solved = sympy.And(*rels).as_set()
        assert quick is not None and quick.symmetric_difference(solved).is_empty, rels


def test_only_linear_relations_in_a_real_variable_with_rational_coefficients_are_read():
    z = sympy.Symbol("z")  # not known to be real
    assert isolated_interval([sympy.StrictLessThan(X**2, 4)], X) is None
    assert isolated_interval([sympy.StrictLessThan(sympy.sqrt(2) * X, 1)], X) is None
    assert isolated_interval([sympy.StrictLessThan(-z, 1)], z) is None
    assert isolated_interval([sympy.Ne(-X, 1)], X) is None
    assert isolated_interval([sympy.StrictLessThan(sympy.Abs(X - 1), 2)], X) is None
    assert isolated_interval([sympy.StrictLessThan(sympy.Abs(z), 2)], z) is None
    assert isolated_interval([sympy.StrictGreaterThan(-X, -1)], X) == sympy.Interval.open(-sympy.oo, 1)
    assert isolated_interval([sympy.LessThan(2 * X + 1, 5), sympy.StrictGreaterThan(X, -3)], X) == sympy.Interval.Lopen(-3, 2)


def test_a_ratio_of_rational_expressions_in_lowest_terms_is_constant_only_if_simplify_says_so():
    rng = random.Random(11)
    y = sympy.Symbol("y", real=True)
    terms = [X, y, X * y, X**2, y**2, sympy.Integer(1)]
    for _ in range(40):
        d2 = sum(sympy.Rational(rng.randint(-5, 5), rng.randint(1, 3)) * t for t in terms)
        d1 = d2 * sympy.Rational(rng.randint(1, 7), rng.randint(1, 5))  # proportional...
        if rng.random() < 0.5:
            d1 += rng.choice(terms) * rng.randint(1, 3)  # ...or not
        if rng.random() < 0.3:
            d1, d2 = d1 / (X + 2), d2 / (X + 2)
        if d1 == 0 or d2 == 0:
            continue
        assert _rational_over_q(d1) and _rational_over_q(d2)
        ratio = sympy.cancel(d1 / d2)
        assert bool(ratio.free_symbols) == bool(sympy.simplify(ratio).free_symbols), (d1, d2)
    assert not _rational_over_q(sympy.sqrt(2) * X + 2)  # cancel may leave sqrt(2) x + 2 over x + sqrt(2)
    assert not _rational_over_q(sympy.pi * X) and not _rational_over_q(sympy.sin(X)) and not _rational_over_q(X**0.5)
