"""Relations read directly as intervals (``sympy_values.isolated_interval``) give the set SymPy's solver gives."""

from __future__ import annotations

import random

import sympy

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


def test_only_linear_relations_in_a_real_variable_with_rational_coefficients_are_read():
    z = sympy.Symbol("z")  # not known to be real
    assert isolated_interval([sympy.StrictLessThan(X**2, 4)], X) is None
    assert isolated_interval([sympy.StrictLessThan(sympy.sqrt(2) * X, 1)], X) is None
    assert isolated_interval([sympy.StrictLessThan(-z, 1)], z) is None
    assert isolated_interval([sympy.Ne(-X, 1)], X) is None
    assert isolated_interval([sympy.StrictGreaterThan(-X, -1)], X) == sympy.Interval.open(-sympy.oo, 1)
    assert isolated_interval([sympy.LessThan(2 * X + 1, 5), sympy.StrictGreaterThan(X, -3)], X) == sympy.Interval.Lopen(-3, 2)
