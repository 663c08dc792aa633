"""SymPy equivalence of two answers; runs inside the verification worker processes.

LaTeX is parsed by ``latex2sympy2_extended`` (the ANTLR LaTeX grammar also used by
Math-Verify) rather than by SymPy's own ``parse_latex``: it reads the notation models
actually write (``\\frac94``-style shorthands once normalized, ``\\sqrt[3]{x}``,
``\\sec^2 y``, ``\\binom``, matrices, ``\\left( \\right)``) and needs no extra runtime,
whereas SymPy's parser needs a pinned ``antlr4`` and rejects much of it. Everything around
the scalars (lists, tuples, intervals, relations, units) is read by ``math_struct`` first.

Exactness: decimals are read as exact rationals (``10.5`` is ``21/2``), integers and
factorials stay exact, so ``1/2004!`` vs ``1/2006!`` or ``2^{100}`` vs ``2^{100}+1`` are
decided by exact arithmetic. A numeric evaluation only ever *rejects* (values differ at a
precision scaled to the size of the numbers involved) or *confirms* (values agree to
that precision at every one of several points); when it can do neither, the answers are
judged different. A decimal matches an exact value only under the configured tolerance
(``float_rounding`` / ``rel_tol``). Numbers whose exact value would have more than
``MAX_DIGITS`` digits (power towers, huge factorials) are not expanded: they raise
:class:`TooLarge`, reported as ``timeout``.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import sympy
from latex2sympy2_extended.latex2sympy2 import latex2sympy

from starloop.verifiers.math_struct import (
    Equation,
    FastOps,
    Interval,
    Leaf,
    LeafOps,
    Matrix,
    Node,
    Rel,
    Seq,
    SetUnion,
    Undecided,
    Unreadable,
    compare,
    leaf_texts,
    numbers_close,
    read_answer,
)

MAX_DIGITS = 200_000
MAX_FACTORIAL = 20_000
_CACHE: dict[str, Any] = {}
_CACHE_SIZE = 4096


class TooLarge(Exception):  # noqa: N818 - a resource limit, reported as a verdict
    """An exact value would be too large to compute."""


class ParseFailure(Exception):  # noqa: N818
    """A scalar could not be read as mathematics."""


# --------------------------------------------------------------------------- parsing

_PLAIN_FUNCS = re.compile(
    r"(?<![\\A-Za-z])(sqrt|sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|log|ln|exp|pi|infty)(?![A-Za-z])"
)
_DEC = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])")
_MIXED = re.compile(r"(?<![\w.^_{}\\])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_MIXED_SLASH = re.compile(r"(?<![\w.^_{}/])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\w./])")
_BASE_NUMBER = re.compile(r"^\s*(\d+)_\{?(\d+)\}?\s*$")


def _prep(text: str) -> str:
    """Rewrite a scalar so that latex2sympy reads it exactly."""
    s = text
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
        le = _estimate_log10(exp, depth + 1)
        if lb is None or le is None:
            return None
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
        expr = latex2sympy(prepped, normalization_config=None, is_real=True)
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
    return expr


# --------------------------------------------------------------------------- numbers


def _digits_hint(*exprs: Any) -> int:
    hint = 0
    for e in exprs:
        if isinstance(e, sympy.Basic):
            for r in e.atoms(sympy.Rational):
                hint = max(hint, len(str(abs(r.p))), len(str(r.q)))
    return min(hint, 5000)


def _finite_number(v: Any) -> bool:
    return (isinstance(v, sympy.Expr) and v.is_number and v.is_finite is not False
            and not v.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo))


def _to_fraction(v: Any, prec: int) -> Fraction | None:
    try:
        num = sympy.N(v, prec)
        if not num.is_real:
            return None
        return Fraction(str(sympy.Float(num, prec)))
    except (TypeError, ValueError, ArithmeticError):
        return None


def _is_real_value(v: Any) -> bool:
    re_part, im_part = v.as_real_imag()
    try:
        return abs(complex(im_part)) <= 1e-25 * max(abs(complex(re_part)), 1.0)
    except (TypeError, ValueError):
        return False


def _abs_float(v: Any) -> float:
    return abs(complex(v))


class SympyOps(LeafOps):
    """Exact SymPy comparison of scalars, equations, relations and sets."""

    def __init__(self, config: Any):
        self.config = config
        self.fast = FastOps(config)
        self.failures: dict[str, str] = {}  # scalar text -> why it could not be read
        self.rng = random.Random(20240531)

    # -- parsing
    def _expr(self, leaf: Leaf, side: str = "") -> Any:
        try:
            return to_sympy(leaf.text)
        except ParseFailure as exc:
            self.failures[leaf.text] = str(exc)
            raise

    # -- scalars
    def leaf_eq(self, p: Leaf, g: Leaf) -> bool:
        try:
            return self.fast.leaf_eq(p, g)
        except Undecided:
            pass
        bp, bg = _BASE_NUMBER.match(p.text), _BASE_NUMBER.match(g.text)
        if bp or bg:  # 204_5: a numeral in base 5, equal only to the same numeral
            return bool(bp and bg and int(bp.group(1)) == int(bg.group(1)) and bp.group(2) == bg.group(2))
        try:
            a = self._expr(p, "pred")
            b = self._expr(g, "gold")
        except ParseFailure:
            return False
        return self._values_eq(a, b, p, g)

    def _values_eq(self, a: Any, b: Any, p: Leaf, g: Leaf) -> bool:
        avals, bvals = [a], [b]
        if p.percent and not g.percent:
            avals.append(a / 100)
        if g.percent and not p.percent:
            bvals.append(b / 100)
        if p.degrees and not g.degrees and _has_pi(b):
            avals.append(a * sympy.pi / 180)
        if g.degrees and not p.degrees and _has_pi(a):
            bvals.append(b * sympy.pi / 180)
        for x in avals:
            for y in bvals:
                if self.exact_eq(x, y):
                    return True
        if (p.approx or g.approx) and self._tolerant():
            for x in avals:
                for y in bvals:
                    if self._close(x, y, p.approx, g.approx):
                        return True
        if not getattr(self.config, "strict_variables", True):
            return any(self._renamed_eq(x, y) for x in avals for y in bvals)
        return False

    def _tolerant(self) -> bool:
        return getattr(self.config, "float_rounding", None) is not None or (getattr(self.config, "rel_tol", 0) or 0) > 0

    def _close(self, x: Any, y: Any, x_approx: bool, y_approx: bool) -> bool:
        if not (isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr)):
            return False
        if x.free_symbols or y.free_symbols:
            return False
        prec = 60 + _digits_hint(x, y)
        fx, fy = _to_fraction(x, prec), _to_fraction(y, prec)
        if fx is None or fy is None:
            return False
        return numbers_close(fx, fy, x_approx, y_approx, self.config)

    def _renamed_eq(self, a: Any, b: Any) -> bool:
        if not (isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic)):
            return False
        sa, sb = sorted(a.free_symbols, key=str), sorted(b.free_symbols, key=str)
        if len(sa) != len(sb) or not sa or len(sa) > 4:
            return False
        for perm in itertools.permutations(sb):
            if self.exact_eq(a.subs(dict(zip(sa, perm, strict=True)), simultaneous=True), b):
                return True
        return False

    def exact_eq(self, a: Any, b: Any) -> bool:
        """Exact equality of two SymPy values (numbers, expressions, matrices)."""
        a_matrix, b_matrix = isinstance(a, sympy.MatrixBase), isinstance(b, sympy.MatrixBase)
        if a_matrix or b_matrix:
            if not (a_matrix and b_matrix) or a.shape != b.shape:
                return False
            return all(self.exact_eq(x, y) for x, y in zip(a, b, strict=True))
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
            return self._symbolic_eq(a, b)
        return self._constant_eq(a, b)

    def _constant_eq(self, a: sympy.Expr, b: sympy.Expr) -> bool:
        if a.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or b.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
            return False  # unequal infinities: a == b above already caught equal ones
        d = a - b
        if d == 0:
            return True
        if d.is_Number:
            return False
        prec = 40 + _digits_hint(a, b)
        verdict = self._numeric_zero(d, a, b, prec)
        if verdict is not None and not verdict:
            return False
        if verdict and self._numeric_zero(d, a, b, 2 * prec):
            return True
        try:
            return bool(sympy.simplify(d) == 0)
        except Exception:
            return False

    @staticmethod
    def _numeric_zero(d: Any, a: Any, b: Any, prec: int) -> bool | None:
        """True: |a-b| is zero to ``prec`` digits; False: clearly nonzero; None: cannot tell."""
        try:
            dv, av, bv = sympy.N(d, prec), sympy.N(a, prec), sympy.N(b, prec)
            if not all(_finite_number(v) for v in (dv, av, bv)):
                return None
            scale = max(_abs_float(av), _abs_float(bv))
            diff = _abs_float(dv)
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

    def _symbolic_eq(self, a: sympy.Expr, b: sympy.Expr) -> bool:
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
        prec = 30 + _digits_hint(a, b)
        for trial in range(10):
            # Positive points, then points of mixed sign; away from the complex-valued
            # answers, a point counts only where both sides are real (their common domain).
            point = {
                s: sympy.Rational(self.rng.randint(11, 97), self.rng.randint(7, 31))
                * (self.rng.choice((-1, 1)) if trial % 2 else 1)
                for s in symbols
            }
            try:
                av = a.evalf(prec, subs=point)
                bv = b.evalf(prec, subs=point)
                if not (_finite_number(av) and _finite_number(bv)):
                    continue
                if not complex_valued and not (_is_real_value(av) and _is_real_value(bv)):
                    continue
                diff = _abs_float(d.evalf(prec, subs=point))
                scale = max(_abs_float(av), _abs_float(bv), 1e-300)
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

    # -- equations, relations, sets
    def equations_eq(self, p: Equation, g: Equation) -> bool:
        try:
            d1 = self._expr(p.lhs, "pred") - self._expr(p.rhs, "pred")
            d2 = self._expr(g.lhs, "gold") - self._expr(g.rhs, "gold")
        except (ParseFailure, TypeError):
            return False
        if not (isinstance(d1, sympy.Expr) and isinstance(d2, sympy.Expr)):
            return False
        if d1 == 0 or d2 == 0:
            return bool(d1 == 0 and d2 == 0)
        try:
            ratio = sympy.cancel(d1 / d2)
            if ratio.free_symbols:
                ratio = sympy.simplify(ratio)
        except Exception:
            return False
        return not ratio.free_symbols and ratio != 0 and ratio.is_finite is not False

    def _relations(self, rel: Rel, side: str) -> list[Any]:
        exprs = [self._expr(part, side) for part in rel.parts]
        ops = {"<": sympy.StrictLessThan, "<=": sympy.LessThan, ">": sympy.StrictGreaterThan,
               ">=": sympy.GreaterThan, "!=": sympy.Ne}
        return [ops[op](exprs[k], exprs[k + 1]) for k, op in enumerate(rel.ops)]

    def _relation_set(self, rel: Rel, side: str) -> Any:
        rels = [_unwrap_functions(r) for r in self._relations(rel, side)]
        combined = sympy.And(*rels)
        symbols = combined.free_symbols
        if len(symbols) != 1:
            raise ParseFailure("not a relation in one variable")
        quick = _isolated_interval(rels, next(iter(symbols)))
        return quick if quick is not None else combined.as_set()

    def relations_eq(self, p: Rel, g: Rel) -> bool:
        try:
            pr, gr = self._relations(p, "pred"), self._relations(g, "gold")
        except (ParseFailure, TypeError):
            return False
        if pr == gr:
            return True
        try:
            ps, gs = self._relation_set(p, "pred"), self._relation_set(g, "gold")
            psym = set().union(*[_unwrap_functions(r).free_symbols for r in pr])
            gsym = set().union(*[_unwrap_functions(r).free_symbols for r in gr])
            if psym == gsym:
                return _sets_equal(ps, gs)
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            pass
        return _normal_forms_eq(pr, gr, self)

    def relation_set_eq(self, rel: Rel, other: Node, rel_is_pred: bool = False) -> bool:
        try:
            rs = self._relation_set(rel, "pred" if rel_is_pred else "gold")
            os_ = self._as_set(other)
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            return False
        return _sets_equal(rs, os_)

    def sets_eq(self, p: Node, g: Node) -> bool:
        try:
            return _sets_equal(self._as_set(p), self._as_set(g))
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            return False

    def _as_set(self, node: Node) -> Any:
        if isinstance(node, Interval):
            lo, hi = to_sympy(node.lo.text), to_sympy(node.hi.text)
            return sympy.Interval(lo, hi, not node.lo_closed, not node.hi_closed)
        if isinstance(node, SetUnion):
            return sympy.Union(*[self._as_set(x) for x in node.items])
        if isinstance(node, Seq) and node.kind == "tuple" and len(node.items) == 2:
            lo, hi = (to_sympy(x.text) for x in node.items)
            return sympy.Interval.open(lo, hi)
        if isinstance(node, Seq) and node.kind in ("set", "list", "pm", "alts"):
            return sympy.FiniteSet(*[to_sympy(x.text) for x in node.items if isinstance(x, Leaf)])
        if isinstance(node, Leaf):
            if node.text.strip() in ("\\emptyset", "\\varnothing", "\\{\\}"):
                return sympy.EmptySet
            return sympy.FiniteSet(to_sympy(node.text))
        raise ParseFailure("not a set")

    def leaf_matrix_eq(self, leaf: Leaf, other: Node) -> bool:
        try:
            value = to_sympy(leaf.text)
        except ParseFailure:
            return False
        if not isinstance(value, sympy.MatrixBase) or not isinstance(other, Matrix):
            return False
        rows = [[to_sympy(c.text) for c in row] for row in other.rows]
        return self.exact_eq(value, sympy.Matrix(rows))


def _has_pi(e: Any) -> bool:
    return isinstance(e, sympy.Basic) and e.has(sympy.pi)


def _unwrap_functions(e: Any) -> Any:
    """``f(x) < 1`` -> a relation in a plain symbol standing for ``f(x)``."""
    calls = [a for a in e.atoms(sympy.Function) if isinstance(a.func, sympy.core.function.UndefinedFunction)]
    if not calls:
        return e
    return e.subs({c: sympy.Symbol(str(c).replace(" ", ""), real=True) for c in calls})


def _isolated_interval(rels: list[Any], x: Any) -> Any:
    """``a < x <= b`` style relations read directly as an interval (no solving needed)."""
    result = sympy.Interval(-sympy.oo, sympy.oo)
    for r in rels:
        if isinstance(r, sympy.Ne):
            return None
        if r.lhs == x and not r.rhs.free_symbols:
            bound, x_left = r.rhs, True
        elif r.rhs == x and not r.lhs.free_symbols:
            bound, x_left = r.lhs, False
        else:
            return None
        strict = isinstance(r, (sympy.StrictLessThan, sympy.StrictGreaterThan))
        below = isinstance(r, (sympy.StrictLessThan, sympy.LessThan)) == x_left  # x below bound
        piece = (sympy.Interval(-sympy.oo, bound, right_open=strict) if below
                 else sympy.Interval(bound, sympy.oo, left_open=strict))
        result = result.intersect(piece)
    return result


def _sets_equal(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        diff = a.symmetric_difference(b)
        return diff == sympy.EmptySet or bool(diff.is_empty)
    except Exception:
        return False


def _normal_forms_eq(pr: list[Any], gr: list[Any], ops: SympyOps) -> bool:
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


def judge(pred: str, gold: str, options: dict[str, Any]) -> tuple[str, str]:
    """(reason, detail) for a predicted answer text against a gold answer text."""
    config = SimpleNamespace(**options)
    try:
        golds = read_answer(gold)
    except (Unreadable, RecursionError) as exc:
        return "error", f"gold answer unreadable: {exc}"
    try:
        preds = read_answer(pred)
    except (Unreadable, RecursionError) as exc:
        return "unparseable", f"answer unreadable: {exc}"
    ops = SympyOps(config)
    try:
        reason, detail = compare(preds, golds, ops, config)
    except TooLarge as exc:
        return "timeout", f"{exc} (limit {MAX_DIGITS} digits)"
    except RecursionError:
        return "unparseable", "answer nested too deeply"
    except Unreadable as exc:
        return "unparseable", f"answer unreadable: {exc}"
    if reason == "wrong" and ops.failures:
        bad_gold = [t for t in leaf_texts(golds) if t in ops.failures]
        bad_pred = [t for t in leaf_texts(preds) if t in ops.failures]
        if bad_gold:
            return "error", f"could not read the gold answer: {bad_gold[0]!r}: {ops.failures[bad_gold[0]]}"
        if bad_pred:
            return "unparseable", f"could not read {bad_pred[0]!r}: {ops.failures[bad_pred[0]]}"
    return reason, detail


def warm_up() -> None:
    """Exercise the parser and SymPy once so that the first real job is not the slow one."""
    defaults = {"float_rounding": None, "rel_tol": 0.0, "unordered_lists": True,
                "strict_variables": True, "relation_matches_set": False}
    for pred, gold in ((r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}"), (r"\sqrt{2}+1", r"1+\sqrt{2}"),
                       (r"x \le 5", r"5 \ge x"), (r"2x+4y=3", r"y=\frac{3-2x}{4}")):
        judge(pred, gold, defaults)
    _CACHE.clear()
