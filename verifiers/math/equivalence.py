"""SymPy equivalence of two answers; runs inside the verification worker processes.

:func:`judge` is what a worker runs (``Job("starloop.verifiers.math.equivalence:judge", ...)``
from :mod:`starloop.verifiers.math`): it reads both answers into structures
(:mod:`~starloop.verifiers.math.parse`), compares them structurally
(:mod:`~starloop.verifiers.math.compare`) and decides each scalar, equation, relation, set
and matrix with :class:`SympyOps`. The scalars' LaTeX is read into SymPy by
:mod:`~starloop.verifiers.math.sympy_values` (see there why ``latex2sympy2_extended``); two
SymPy values are compared by :mod:`~starloop.verifiers.math.sympy_equality`. Relations and
sets are turned into SymPy sets here. :func:`warm_up` runs once when a worker starts.

Exactness: decimals are read as exact rationals (``10.5`` is ``21/2``), integers and
factorials stay exact, so ``1/2004!`` vs ``1/2006!`` or ``2^{100}`` vs ``2^{100}+1`` are
decided by exact arithmetic. A numeric evaluation only ever *rejects* (values differ at a
precision scaled to the size of the numbers involved) or *confirms* (values agree to
that precision at every one of several points); when it can do neither, SymPy's
``simplify`` decides. A decimal matches an exact value only under the configured tolerance
(``float_rounding`` / ``rel_tol``). Numbers whose exact value would have more than
``MAX_DIGITS`` digits (power towers, huge factorials) are not expanded: they raise
:class:`~starloop.verifiers.math.sympy_values.TooLarge`, reported as ``timeout``. An undefined
scalar (SymPy's ``zoo`` or ``nan``: ``\\frac{1}{0}``, ``\\infty - \\infty``) is unreadable, so it
equals nothing: an ``error`` for the gold (which is read first), ``unparseable`` for an answer.
Inequalities, unions of inequalities (``x < -2 or x > 3``) and ``x \\in`` a set become SymPy
sets of one named variable.

Imports SymPy at module level: only the worker processes import this module.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import sympy

from starloop.verifiers.math import latex, warmup
from starloop.verifiers.math.compare import FastOps, LeafOps, Undecided, compare
from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.matching import leaf_texts
from starloop.verifiers.math.nodes import (
    Assign,
    Equation,
    Interval,
    Leaf,
    Matrix,
    Node,
    Rel,
    Seq,
    SetUnion,
    Unreadable,
)
from starloop.verifiers.math.parse import read_answer
from starloop.verifiers.math.sympy_equality import close_eq, exact_eq, renamed_eq
from starloop.verifiers.math.sympy_values import (
    MAX_DIGITS,
    ParseFailure,
    TooLarge,
    clear_cache,
    has_pi,
    isolated_interval,
    normal_forms_eq,
    sets_equal,
    to_sympy,
    unwrap_functions,
)

_BASE_NUMBER = re.compile(r"^\s*(\d+)_\{?(\d+)\}?\s*$")


class SympyOps(LeafOps):
    """Exact SymPy comparison of scalars, equations, relations, sets and matrices."""

    def __init__(self, config: MathConfig):
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
            b = self._expr(g, "gold")  # the gold first: an unreadable gold is an error, whatever the answer
            a = self._expr(p, "pred")
        except ParseFailure:
            return False
        return self._values_eq(a, b, p, g)

    def _values_eq(self, a: Any, b: Any, p: Leaf, g: Leaf) -> bool:
        avals, bvals = [a], [b]
        if p.percent and not g.percent:
            avals.append(a / 100)
        if g.percent and not p.percent:
            bvals.append(b / 100)
        if p.degrees and not g.degrees and has_pi(b):
            avals.append(a * sympy.pi / 180)
        if g.degrees and not p.degrees and has_pi(a):
            bvals.append(b * sympy.pi / 180)
        for x in avals:
            for y in bvals:
                if self.exact_eq(x, y):
                    return True
        if (p.approx or g.approx) and self._tolerant():
            for x in avals:
                for y in bvals:
                    if close_eq(x, y, p.approx, g.approx, self.config):
                        return True
        if not self.config.strict_variables:
            return any(renamed_eq(x, y, self.rng) for x in avals for y in bvals)
        return False

    def _tolerant(self) -> bool:
        return self.config.float_rounding is not None or self.config.rel_tol > 0

    def exact_eq(self, a: Any, b: Any) -> bool:
        """Exact equality of two SymPy values (numbers, expressions, matrices)."""
        return exact_eq(a, b, self.rng)

    # -- equations, relations, sets
    def equations_eq(self, p: Equation, g: Equation) -> bool:
        try:
            d2 = self._expr(g.lhs, "gold") - self._expr(g.rhs, "gold")
            d1 = self._expr(p.lhs, "pred") - self._expr(p.rhs, "pred")
        except (ParseFailure, TypeError):
            return False
        if not (isinstance(d1, sympy.Expr) and isinstance(d2, sympy.Expr)):
            return False
        if d1 == 0 or d2 == 0:
            return bool(d1 == 0 and d2 == 0)
        try:
            ratio = sympy.cancel(d1 / d2)
            if ratio.free_symbols and not (_rational_over_q(d1) and _rational_over_q(d2)):
                ratio = sympy.simplify(ratio)
        except Exception:
            return False
        return not ratio.free_symbols and ratio != 0 and ratio.is_finite is not False

    def relations_eq(self, p: Rel, g: Rel) -> bool:
        try:
            gr, pr = _relations(g, self._expr), _relations(p, self._expr)
        except (ParseFailure, TypeError):
            return False
        if pr == gr:
            return True
        try:
            ps, gs = _relation_set(p, self._expr)[0], _relation_set(g, self._expr)[0]
            psym = set().union(*[unwrap_functions(r).free_symbols for r in pr])
            gsym = set().union(*[unwrap_functions(r).free_symbols for r in gr])
            if psym == gsym:
                return sets_equal(ps, gs)
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            pass
        return normal_forms_eq(pr, gr)

    def relation_set_eq(self, rel: Node, other: Node, rel_is_pred: bool = False) -> bool:
        try:
            if rel_is_pred:
                os_ = _as_set(other.value if isinstance(other, Assign) else other)
                rs, x = _relational_set(rel, self._expr)
            else:
                rs, x = _relational_set(rel, self._expr)
                os_ = _as_set(other.value if isinstance(other, Assign) else other)
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            return False
        if isinstance(other, Assign) and self.config.strict_variables and not _names(other.label, x):
            return False  # x \in [a, b] is not y \ge a
        return sets_equal(rs, os_)

    def relation_sets_eq(self, p: Node, g: Node) -> bool:
        try:
            gs, gx = _relational_set(g, self._expr)
            ps, px = _relational_set(p, self._expr)
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            return False
        if self.config.strict_variables and px.name != gx.name:
            return False
        return sets_equal(ps, gs)

    def sets_eq(self, p: Node, g: Node) -> bool:
        try:
            return sets_equal(_as_set(p), _as_set(g))
        except (ParseFailure, NotImplementedError, TypeError, ValueError):
            return False

    # -- matrices
    def leaf_matrix_eq(self, leaf: Leaf, other: Node) -> bool:
        try:
            value = to_sympy(leaf.text)
        except ParseFailure:
            return False
        if not isinstance(value, sympy.MatrixBase) or not isinstance(other, Matrix):
            return False
        try:
            rows = [[to_sympy(c.text) for c in row] for row in other.rows]
        except ParseFailure:
            return False
        return self.exact_eq(value, sympy.Matrix(rows))


def _rational_over_q(e: Any) -> bool:
    """Built from symbols and rational numbers by ``+``, ``*`` and integer powers: then ``cancel``
    already gives the ratio of two such expressions in lowest terms, and a ratio still in the
    variables is no constant (``simplify`` could not make it one: tens of ms saved per equation)."""
    if e.is_Rational or e.is_Symbol:
        return True
    if e.is_Add or e.is_Mul:
        return all(_rational_over_q(a) for a in e.args)
    return bool(e.is_Pow and e.exp.is_Integer and _rational_over_q(e.base))


# --------------------------------------------------------------------------- relations and sets as SymPy


def _relations(rel: Rel, read: Callable[[Leaf], Any], evaluate: bool = True) -> list[Any]:
    """``a < b <= c`` as the SymPy relations ``[a < b, b <= c]`` (``read``: a scalar's SymPy value)."""
    exprs = [read(part) for part in rel.parts]
    ops = {"<": sympy.StrictLessThan, "<=": sympy.LessThan, ">": sympy.StrictGreaterThan,
           ">=": sympy.GreaterThan, "!=": sympy.Ne}
    return [ops[op](exprs[k], exprs[k + 1], evaluate=evaluate) for k, op in enumerate(rel.ops)]


def _relation_set(rel: Rel, read: Callable[[Leaf], Any]) -> tuple[Any, Any]:
    """The set of values of its one variable that satisfy a relation chain, and that variable."""
    rels = [unwrap_functions(r) for r in _relations(rel, read)]
    combined = sympy.And(*rels)
    symbols = combined.free_symbols
    if not symbols:  # -\infty < x < \infty: each bound holds for every real x
        rels = [unwrap_functions(r) for r in _relations(rel, read, evaluate=False)]
        symbols = sympy.And(*rels, evaluate=False).free_symbols
        if len(symbols) == 1 and all(r.free_symbols for r in rels):
            return sympy.Interval(-sympy.oo, sympy.oo) if combined is sympy.true else sympy.EmptySet, symbols.pop()
    if len(symbols) != 1:
        raise ParseFailure("not a relation in one variable")
    x = next(iter(symbols))
    quick = isolated_interval(rels, x)
    return (quick if quick is not None else combined.as_set()), x


def _relational_set(node: Node, read: Callable[[Leaf], Any]) -> tuple[Any, Any]:
    """An inequality, or a union of inequalities (and sets) in one variable: (its set, the variable)."""
    if isinstance(node, Rel):
        return _relation_set(node, read)
    if not isinstance(node, SetUnion):
        raise ParseFailure("not a relation")
    pieces, variables = [], set()
    for item in node.items:
        if isinstance(item, Rel):
            piece, x = _relation_set(item, read)
            variables.add(x)
            pieces.append(piece)
        else:
            pieces.append(_as_set(item))
    if len(variables) != 1:
        raise ParseFailure("inequalities in several variables")
    return sympy.Union(*pieces), variables.pop()


def _names(label: str, x: Any) -> bool:
    """Whether ``label`` (``x``, ``f(x)``) names the variable ``x`` of a relation."""
    try:
        named = unwrap_functions(to_sympy(label))
    except ParseFailure:
        return False
    return isinstance(named, sympy.Symbol) and named.name == x.name


def _as_set(node: Node) -> Any:
    """An interval, union, 2-tuple (an open interval), list of values or scalar as a SymPy set."""
    if isinstance(node, Interval):
        lo, hi = to_sympy(node.lo.text), to_sympy(node.hi.text)
        return sympy.Interval(lo, hi, not node.lo_closed, not node.hi_closed)
    if isinstance(node, SetUnion):
        return sympy.Union(*[_as_set(x) for x in node.items])
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


def judge(pred: str, gold: str, options: dict[str, Any]) -> tuple[str, str]:
    """(reason, detail) for a predicted answer text against a gold answer text.

    ``options`` are :class:`MathConfig` fields as a plain dict (the verifier leaves out the
    ``timeout`` / ``memory_mb`` limits, which the pool enforces, so they take their defaults).
    """
    config = MathConfig(**options)
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
    """Build the parser's tables and SymPy's lazily loaded machinery once, when a worker starts
    (see :mod:`~starloop.verifiers.math.warmup`)."""

    def clear() -> None:
        clear_cache()
        sympy.core.cache.clear_cache()

    warmup.run(judge, clear, prime=latex.prime)


def warm_up_quick() -> None:
    """A short warm-up, for a worker that replaces one killed mid-run (a job may be waiting)."""
    warmup.run(judge, clear_cache, quick=True)
