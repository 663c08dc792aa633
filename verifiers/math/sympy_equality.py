"""Equality of two SymPy values, for :class:`~starloop.verifiers.math.equivalence.SympyOps` (worker side).

- :func:`exact_eq`: exact equality of numbers, expressions and matrices. Exact values are
  decided by exact arithmetic (``1/2004!`` vs ``1/2006!``, ``2^{100}`` vs ``2^{100}+1``). A
  numeric evaluation only ever *rejects* (values differ at a precision scaled to the size of
  the numbers involved) or *confirms* (values agree to that precision, for expressions in
  variables at every one of several random points); when it can do neither, SymPy's
  ``simplify`` decides.
- :func:`close_eq`: equality within the configured tolerance (``float_rounding`` /
  ``rel_tol``), for a pair where one side is a decimal.
- :func:`renamed_eq`: exact equality up to a renaming of the variables (``strict_variables=False``).

The random points come from the caller's ``rng``, so that a judgement is reproducible.

Imports SymPy at module level: only the worker processes import this module.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import sympy

from starloop.verifiers.math.compare import numbers_close
from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.sympy_values import (
    abs_float,
    digits_hint,
    finite_number,
    is_real_value,
    to_fraction,
)


def exact_eq(a: Any, b: Any, rng: random.Random) -> bool:
    """Exact equality of two SymPy values (numbers, expressions, matrices)."""
    a_matrix, b_matrix = isinstance(a, sympy.MatrixBase), isinstance(b, sympy.MatrixBase)
    if a_matrix or b_matrix:
        if not (a_matrix and b_matrix) or a.shape != b.shape:
            return False
        return all(exact_eq(x, y, rng) for x, y in zip(a, b, strict=True))
    if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
        try:
            return bool(a == b)
        except Exception:
            return False
    if a == b:
        return True
    if a.is_Number and b.is_Number:
        return False
    if a.free_symbols or b.free_symbols:
        return _symbolic_eq(a, b, rng)
    return _constant_eq(a, b)


def _constant_eq(a: sympy.Expr, b: sympy.Expr) -> bool:
    if a.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or b.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
        return False  # unequal infinities: a == b in exact_eq already caught equal ones
    d = a - b
    if d == 0:
        return True
    if d.is_Number:
        return False
    prec = 40 + digits_hint(a, b)
    verdict = numeric_zero(d, a, b, prec)
    if verdict is not None and not verdict:
        return False
    if verdict and numeric_zero(d, a, b, 2 * prec):
        return True
    try:
        return bool(sympy.simplify(d) == 0)
    except Exception:
        return False


def numeric_zero(d: Any, a: Any, b: Any, prec: int) -> bool | None:
    """True: |a-b| is zero to ``prec`` digits; False: clearly nonzero; None: cannot tell."""
    try:
        dv, av, bv = sympy.N(d, prec), sympy.N(a, prec), sympy.N(b, prec)
        if not all(finite_number(v) for v in (dv, av, bv)):
            return None
        scale = max(abs_float(av), abs_float(bv))
        diff = abs_float(dv)
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return None
    if scale == 0.0 or not math.isfinite(scale):
        # Magnitudes below float range (1/3000!): compare in log space through SymPy.
        try:
            ratio = sympy.N(sympy.Abs(d) / sympy.Max(sympy.Abs(a), sympy.Abs(b)), 30)
            r = float(ratio)
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            return None
        if r > 10.0 ** (-(prec - 15)):
            return False
        return True
    if diff <= scale * 10.0 ** (-(prec - 15)) or diff == 0.0:
        return True
    return False


def _symbolic_eq(a: sympy.Expr, b: sympy.Expr, rng: random.Random) -> bool:
    d = a - b
    if d == 0:
        return True
    if d.is_Number:
        return False  # the difference is a nonzero constant
    try:
        if sympy.count_ops(d) < 300 and sympy.expand(d) == 0:
            return True
    except Exception:
        pass
    symbols = sorted(d.free_symbols | a.free_symbols | b.free_symbols, key=str)
    complex_valued = a.has(sympy.I) or b.has(sympy.I)
    agree = 0
    prec = 30 + digits_hint(a, b)
    for trial in range(10):
        # Positive points, then points of mixed sign; away from the complex-valued
        # answers, a point counts only where both sides are real (their common domain).
        point = {
            s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 31)) * (rng.choice((-1, 1)) if trial % 2 else 1)
            for s in symbols
        }
        try:
            av = a.evalf(prec, subs=point)
            bv = b.evalf(prec, subs=point)
            if not (finite_number(av) and finite_number(bv)):
                continue
            if not complex_valued and not (is_real_value(av) and is_real_value(bv)):
                continue
            diff = abs_float(d.evalf(prec, subs=point))
            scale = max(abs_float(av), abs_float(bv), 1e-300)
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            continue
        if diff > scale * 1e-10:
            return False  # decisively different at this point
        if diff <= scale * 10.0 ** (-(prec - 10)):
            agree += 1
            if agree >= 4:
                return True
    if agree >= 3:
        return True
    try:
        return bool(sympy.simplify(d) == 0)
    except Exception:
        return False


def close_eq(x: Any, y: Any, x_approx: bool, y_approx: bool, config: MathConfig) -> bool:
    """Two constants equal within the configured tolerance (``x_approx``: ``x`` is a decimal)."""
    if not (isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr)):
        return False
    if x.free_symbols or y.free_symbols:
        return False
    prec = 60 + digits_hint(x, y)
    fx, fy = to_fraction(x, prec), to_fraction(y, prec)
    if fx is None or fy is None:
        return False
    return numbers_close(fx, fy, x_approx, y_approx, config)


def renamed_eq(a: Any, b: Any, rng: random.Random) -> bool:
    """Exactly equal after renaming ``a``'s variables (at most 4) to ``b``'s in some order."""
    if not (isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic)):
        return False
    sa, sb = sorted(a.free_symbols, key=str), sorted(b.free_symbols, key=str)
    if len(sa) != len(sb) or not sa or len(sa) > 4:
        return False
    for perm in itertools.permutations(sb):
        if exact_eq(a.subs(dict(zip(sa, perm, strict=True)), simultaneous=True), b, rng):
            return True
    return False
