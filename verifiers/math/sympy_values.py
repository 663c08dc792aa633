"""SymPy values of answer scalars, for :mod:`~starloop.verifiers.math.equivalence` and
:mod:`~starloop.verifiers.math.sympy_equality` (worker side).

- Parsing: :func:`to_sympy` reads one scalar's LaTeX with ``latex2sympy2_extended`` (the ANTLR
  LaTeX grammar also used by Math-Verify; parsed in two stages, see
  :mod:`~starloop.verifiers.math.latex`) rather than SymPy's own ``parse_latex``: it reads
  the notation models actually write (``\\frac94``-style shorthands once normalized,
  ``\\sqrt[3]{x}``, ``\\sec^2 y``, ``\\binom``, matrices, ``\\left( \\right)``) and needs no
  extra runtime, whereas SymPy's parser needs a pinned ``antlr4`` and rejects much of it.
  Decimals are read as exact rationals (``10.5`` is ``21/2``) and mixed numbers as sums.
  Numbers whose exact value would have more than ``MAX_DIGITS`` digits (power towers, huge
  factorials) are not expanded: they raise :class:`TooLarge`. An undefined value (``zoo`` or
  ``nan``: a division by zero, ``\\infty - \\infty``) raises :class:`Undefined`. Long chains of
  nested square roots are collapsed into one power first
  (:func:`~starloop.verifiers.math.forms.collapse_root_chains`), since the grammar recurses once
  per level. Results are cached per text.
- Numbers: reading SymPy values back as floats / fractions at a chosen precision.
- Relations and sets: ``a < x <= b`` read directly as an interval, set equality, and
  inequalities in several variables compared in a normal form.

Imports SymPy at module level: only the worker processes import this module.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import sympy

from starloop.verifiers.math.forms import collapse_root_chains
from starloop.verifiers.math.latex import latex_to_sympy

MAX_DIGITS = 200_000
MAX_FACTORIAL = 20_000
_CACHE: dict[str, Any] = {}
_CACHE_SIZE = 4096


class TooLarge(Exception):  # noqa: N818 - a resource limit, reported as a verdict
    """An exact value would be too large to compute."""


class ParseFailure(Exception):  # noqa: N818
    """A scalar could not be read as mathematics."""


class Undefined(ParseFailure):
    """A scalar has no value: a division by zero (``\\frac{1}{0}``), ``\\infty - \\infty``, ``\\log 0``..."""


# --------------------------------------------------------------------------- parsing

_PLAIN_FUNCS = re.compile(
    r"(?<![\\A-Za-z])(sqrt|sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|log|ln|exp|pi|infty)(?![A-Za-z])"
)
_DEC = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")
_MIXED = re.compile(r"(?<![\w.^_{}\\])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_MIXED_SLASH = re.compile(r"(?<![\w.^_{}/])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\w./])")


def _prep(text: str) -> str:
    """Rewrite a scalar so that latex2sympy reads it exactly."""
    s = collapse_root_chains(text)  # hundreds of nested square roots: one power
    s = s.replace("**", "^")
    s = _PLAIN_FUNCS.sub(r"\\\1", s)
    s = re.sub(r"\\sqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", s)

    def mixed(m: re.Match[str]) -> str:
        whole, num, den = m.group(1), m.group(2), m.group(3)
        if int(num) >= int(den):
            return m.group(0)
        return f"({whole}+\\frac{{{num}}}{{{den}}})"

    s = _MIXED.sub(mixed, s)
    s = _MIXED_SLASH.sub(mixed, s)

    def dec(m: re.Match[str]) -> str:
        whole, frac = m.group(1) or "0", m.group(2)
        if len(whole) + len(frac) > 400:
            raise TooLarge("decimal literal too long")
        out = f"\\frac{{{int(whole + frac)}}}{{1{'0' * len(frac)}}}"
        before = s[: m.start()].rstrip()
        return "{" + out + "}" if before.endswith(("^", "_")) else out

    s = _DEC.sub(dec, s)
    return s


def _estimate_log10(e: Any, depth: int = 0) -> float | None:
    """An upper bound on log10|e| for a numeric tree, or None when e is not a plain number."""
    if depth > 60:
        return None
    if isinstance(e, sympy.Integer):
        return math.log10(abs(int(e)) + 1)
    if isinstance(e, sympy.Rational):
        return math.log10(max(abs(e.p), abs(e.q)) + 1)
    if isinstance(e, sympy.Pow):
        base, exp = e.args
        lb = _estimate_log10(base, depth + 1)
        if lb is not None and isinstance(exp, sympy.Rational) and abs(exp) <= 1:
            return lb  # a root (16^{1/2^{300}}): no larger than its base
        le = _estimate_log10(exp, depth + 1)
        if lb is None or le is None:
            return None
        if le > 12 and _at_most_one(exp):
            return lb  # 2^{2^{-298}}: a tiny exponent (its size bound counts its digits)
        if le > 12:
            if lb > 0.0 and not (isinstance(base, sympy.Integer) and abs(int(base)) <= 1):
                raise TooLarge("power too large to evaluate exactly")
            return None
        try:
            ev = abs(float(exp))
        except (TypeError, ValueError):
            return None
        bound = ev * max(lb, 1.0)
        if bound > MAX_DIGITS:
            raise TooLarge("power too large to evaluate exactly")
        return bound
    if isinstance(e, sympy.factorial):
        (arg,) = e.args
        la = _estimate_log10(arg, depth + 1)
        if la is None:
            return None
        if la > 6:
            raise TooLarge("factorial too large to evaluate exactly")
        try:
            n = float(arg)
        except (TypeError, ValueError):
            return None
        if n > MAX_FACTORIAL:
            raise TooLarge("factorial too large to evaluate exactly")
        return n * math.log10(max(n, 2.0))
    if isinstance(e, (sympy.Add, sympy.Mul)):
        total = 0.0
        for a in e.args:
            la = _estimate_log10(a, depth + 1)
            if la is None:
                la = 0.0
            total += la + 1
        if total > MAX_DIGITS:
            raise TooLarge("number too large to evaluate exactly")
        return total
    for a in getattr(e, "args", ()):
        _estimate_log10(a, depth + 1)
    return None


def _at_most_one(e: Any) -> bool:
    """Whether a number of bounded size (its digits already estimated) has absolute value at most 1."""
    try:
        return bool(abs(sympy.N(e, 15)) <= 1)
    except (TypeError, ValueError, ArithmeticError):
        return False


def to_sympy(text: str) -> Any:
    """The SymPy value of one scalar (cached); ParseFailure or TooLarge otherwise."""
    if text in _CACHE:
        value = _CACHE[text]
        if isinstance(value, Exception):
            raise value
        return value
    try:
        value = _to_sympy(text)
    except (ParseFailure, TooLarge) as exc:
        _remember(text, exc)
        raise
    _remember(text, value)
    return value


def _remember(text: str, value: Any) -> None:
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[text] = value


def _to_sympy(text: str) -> Any:
    prepped = _prep(text)
    try:
        expr = latex_to_sympy(prepped, is_real=True)
    except RecursionError:
        raise ParseFailure("expression nested too deeply") from None
    except Exception as exc:  # the ANTLR grammar raises plain Exceptions
        raise ParseFailure(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(expr, (sympy.Basic, sympy.MatrixBase)):
        raise ParseFailure(f"not an expression: {type(expr).__name__}")
    _estimate_log10(expr)
    try:
        expr = expr.doit()
    except TooLarge:
        raise
    except Exception:  # unevaluable pieces (an Integral without antiderivative...) stay as they are
        pass
    if isinstance(expr, sympy.Basic):
        imaginary = [s for s in expr.free_symbols if s.name == "i"]
        if imaginary:
            expr = expr.subs({s: sympy.I for s in imaginary})
    if isinstance(expr, (sympy.Basic, sympy.MatrixBase)) and expr.has(sympy.zoo, sympy.nan):
        raise Undefined("undefined value (a division by zero or an indeterminate form)")
    return expr

def clear_cache() -> None:
    """Forget the parsed scalars (:func:`to_sympy` results)."""
    _CACHE.clear()


# --------------------------------------------------------------------------- numbers


def digits_hint(*exprs: Any) -> int:
    hint = 0
    for e in exprs:
        if isinstance(e, sympy.Basic):
            for r in e.atoms(sympy.Rational):
                hint = max(hint, len(str(abs(r.p))), len(str(r.q)))
    return min(hint, 5000)


def finite_number(v: Any) -> bool:
    return (isinstance(v, sympy.Expr) and v.is_number and v.is_finite is not False
            and not v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo))


def to_fraction(v: Any, prec: int) -> Fraction | None:
    try:
        num = sympy.N(v, prec)
        if not num.is_real:
            return None
        return Fraction(str(sympy.Float(num, prec)))
    except (TypeError, ValueError, ArithmeticError):
        return None


def is_real_value(v: Any) -> bool:
    re_part, im_part = v.as_real_imag()
    try:
        return abs(complex(im_part)) <= 1e-25 * max(abs(complex(re_part)), 1.0)
    except (TypeError, ValueError):
        return False


def abs_float(v: Any) -> float:
    return abs(complex(v))


def has_pi(e: Any) -> bool:
    return isinstance(e, sympy.Basic) and e.has(sympy.pi)


# --------------------------------------------------------------------------- relations and sets


def unwrap_functions(e: Any) -> Any:
    """``f(x) < 1`` -> a relation in a plain symbol standing for ``f(x)``."""
    calls = [a for a in e.atoms(sympy.Function) if isinstance(a.func, sympy.core.function.UndefinedFunction)]
    if not calls:
        return e
    return e.subs({c: sympy.Symbol(str(c).replace(" ", ""), real=True) for c in calls})


def isolated_interval(rels: list[Any], x: Any) -> Any:
    """``a < x <= b`` style relations, linear ones with rational coefficients (``-x > -1``,
    ``2x + 1 \\le 5``) and bounds on ``|x|`` (``1 \\le |x| \\le 3``) read directly as an interval
    or union of intervals: no solving needed (``as_set`` takes tens of milliseconds for each and
    gives the same set); None for other relations."""
    result = sympy.Interval(-sympy.oo, sympy.oo)
    for r in rels:
        if isinstance(r, sympy.Ne):
            return None
        around = None
        if r.lhs == x and not r.rhs.free_symbols:
            bound, x_left = r.rhs, True
        elif r.rhs == x and not r.lhs.free_symbols:
            bound, x_left = r.lhs, False
        else:
            around = _abs_bound(r, x)
            read = around if around is not None else _linear_bound(r, x)
            if read is None:
                return None
            bound, x_left = read
        strict = isinstance(r, (sympy.StrictLessThan, sympy.StrictGreaterThan))
        below = isinstance(r, (sympy.StrictLessThan, sympy.LessThan)) == x_left  # x (or |x|) below bound
        if around is not None:  # |x| below c: (-c, c); above c: outside it
            piece = (sympy.Interval(-bound, bound, strict, strict) if below else
                     sympy.Union(sympy.Interval(-sympy.oo, -bound, right_open=strict),
                                 sympy.Interval(bound, sympy.oo, left_open=strict)))
        else:
            piece = (sympy.Interval(-sympy.oo, bound, right_open=strict) if below
                     else sympy.Interval(bound, sympy.oo, left_open=strict))
        result = result.intersect(piece)
    return result


def _abs_bound(r: Any, x: Any) -> tuple[Any, bool] | None:
    """``r`` as ``|x| op c`` (True) or ``c op |x|`` (False), ``c`` rational and ``x`` real; None otherwise."""
    if x.is_real is not True:
        return None
    if r.lhs == sympy.Abs(x) and r.rhs.is_Rational:
        return r.rhs, True
    if r.rhs == sympy.Abs(x) and r.lhs.is_Rational:
        return r.lhs, False
    return None


def _linear_bound(r: Any, x: Any) -> tuple[Any, bool] | None:
    """``r`` as ``x op bound`` (True) or ``bound op x`` (False) when ``lhs - rhs`` is ``a x + b``
    with rational ``a != 0`` and ``b`` and ``x`` is real; None otherwise."""
    try:
        if x.is_real is not True:
            return None
        d = r.lhs - r.rhs
        slope = d.diff(x)
        rest = d - slope * x
        if not (slope.is_Rational and rest.is_Rational) or slope == 0:
            return None
        return -rest / slope, bool(slope > 0)  # dividing by a negative slope turns the relation round
    except Exception:  # not an expression in x: solving decides, as before
        return None


def sets_equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        diff = a.symmetric_difference(b)
        return diff == sympy.EmptySet or bool(diff.is_empty)
    except Exception:
        return False


def normal_forms_eq(pr: list[Any], gr: list[Any]) -> bool:
    """Several-variable inequalities: ``a < b`` as ``a - b < 0`` up to a positive factor."""
    def norm(r: Any) -> tuple[str, Any]:
        if isinstance(r, sympy.Ne):
            return "!=", r.lhs - r.rhs
        if isinstance(r, (sympy.StrictGreaterThan, sympy.GreaterThan)):
            return ("<" if isinstance(r, sympy.StrictGreaterThan) else "<="), r.rhs - r.lhs
        return ("<" if isinstance(r, sympy.StrictLessThan) else "<="), r.lhs - r.rhs

    if len(pr) != len(gr):
        return False
    for p, g in zip(pr, gr, strict=True):
        (po, pe), (go, ge) = norm(p), norm(g)
        if po != go:
            return False
        try:
            ratio = sympy.simplify(pe / ge)
        except Exception:
            return False
        if ratio.free_symbols or not (ratio.is_positive or (po == "!=" and ratio != 0)):
            return False
    return True
