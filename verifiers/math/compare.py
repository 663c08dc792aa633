"""Compare a predicted answer's structure with the gold's (nodes from :mod:`~starloop.verifiers.math.parse`).

:class:`Comparator` decides structural equivalence (lists in any order, tuples in order,
intervals, relations, assignments matched by label, matrices, ratios, text) and leaves the
mathematics of each scalar to a pluggable :class:`LeafOps`. :class:`FastOps` compares plain
numbers (integers, decimals, fractions, mixed numbers, scientific notation) exactly with
:class:`fractions.Fraction` and raises :class:`Undecided` for anything else; the worker
processes use the SymPy ops of :mod:`~starloop.verifiers.math.equivalence`. Pure Python, no
SymPy: this module runs in the calling process for the cheap cases and in the workers for
the rest; its helpers (hedges, multisets, text, which answers could be undefined) are in
:mod:`~starloop.verifiers.math.matching`.

Sets and inequalities (see the verifier's docstring): an inequality, compound ones included
(``x < -2 or x > 3``), is compared with another as the set it describes, in the same
variable; a set (an interval, a union, ``x \\in`` one) answers a gold inequality; an
inequality answers a gold set only with ``relation_matches_set``. Identical texts that could
be undefined (``\\frac{1}{0}``) are not equal until evaluated. Alternatives ("14 or 16") for a
one-valued gold are a hedge, unless every alternative is that value ("1/2, or 50%").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from starloop.verifiers.math.config import MathConfig
from starloop.verifiers.math.matching import (
    alternatives,
    is_hedge,
    may_be_undefined,
    membership,
    multiset_eq,
    relational,
    text_eq,
    text_may_be_undefined,
    unwrap,
)
from starloop.verifiers.math.nodes import (
    MAX_DEPTH,
    Assign,
    Equation,
    Interval,
    Leaf,
    Matrix,
    Node,
    Ratio,
    Rel,
    Seq,
    SetUnion,
    Text,
    Unreadable,
    fast_number,
)
from starloop.verifiers.math.parse import label_key


class Undecided(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The cheap comparison cannot decide; the SymPy comparison must."""


# --------------------------------------------------------------------------- numbers


def round_to(x: Fraction, places: int) -> Fraction:
    return Fraction(round(x, places))


def numbers_close(a: Fraction, b: Fraction, a_approx: bool, b_approx: bool, config: MathConfig) -> bool:
    """Equality allowed by the configured tolerance, for a pair where one side is a decimal."""
    if not (a_approx or b_approx):
        return False
    # A decimal that reads zero never stands for a nonzero exact value (1/3000! is not 0.0).
    if (a == 0 and a_approx and b != 0 and not b_approx) or (b == 0 and b_approx and a != 0 and not a_approx):
        return False
    rounding = config.float_rounding
    if rounding is not None and round_to(a, rounding) == round_to(b, rounding):
        return True
    rel_tol = config.rel_tol
    if rel_tol > 0 and abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b)):
        return True
    return False


# --------------------------------------------------------------------------- comparison


class LeafOps:
    """The mathematics behind a comparison; :class:`FastOps` here, SymPy in ``equivalence``."""

    config: MathConfig

    def leaf_eq(self, p: Leaf, g: Leaf) -> bool:
        raise Undecided

    def equations_eq(self, p: Equation, g: Equation) -> bool:
        raise Undecided

    def relations_eq(self, p: Rel, g: Rel) -> bool:
        raise Undecided

    def relation_set_eq(self, rel: Node, other: Node, rel_is_pred: bool = False) -> bool:
        """An inequality (or a union with inequalities) against a set (or ``x \\in`` a set)."""
        raise Undecided

    def relation_sets_eq(self, p: Node, g: Node) -> bool:
        """Two inequalities or unions of inequalities: the same set of the same variable."""
        raise Undecided

    def sets_eq(self, p: Node, g: Node) -> bool:
        raise Undecided

    def leaf_matrix_eq(self, leaf: Leaf, other: Node) -> bool:
        raise Undecided


@dataclass
class FastOps(LeafOps):
    """Exact comparison of plain numbers without SymPy; anything else is :class:`Undecided`."""

    config: MathConfig = field(default_factory=MathConfig)

    def leaf_eq(self, p: Leaf, g: Leaf) -> bool:
        same = p == g or (p.text == g.text and p.degrees == g.degrees and not (p.percent ^ g.percent))
        if same and not text_may_be_undefined(p.text):
            return True
        a, b = fast_number(p.text), fast_number(g.text)
        if a is None or b is None:
            raise Undecided
        return values_match(a, b, p, g, self.config)


def values_match(
    a: Any,
    b: Any,
    p: Leaf,
    g: Leaf,
    config: MathConfig,
    close: Callable[[Fraction, Fraction, bool, bool, MathConfig], bool] = numbers_close,
) -> bool:
    """Numbers ``a`` (pred) and ``b`` (gold), with percent read as itself or as a fraction of 100."""
    pa = [a] + ([a / 100] if p.percent and not g.percent else [])
    gb = [b] + ([b / 100] if g.percent and not p.percent else [])
    for x in pa:
        for y in gb:
            if x == y:
                return True
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return any(close(x, y, p.approx, g.approx, config) for x in pa for y in gb)
    return False


_UNORDERED = ("list", "alts", "set", "pm")


class Comparator:
    """Structural equivalence of two answers; the scalars go to ``ops``."""

    def __init__(self, ops: LeafOps, config: MathConfig):
        self.ops = ops
        self.config = config

    def eq(self, p: Node, g: Node, depth: int = 0) -> bool:
        if depth > MAX_DEPTH:
            raise Unreadable("answer is nested too deeply")
        p, g = unwrap(p), unwrap(g)
        if p == g and not may_be_undefined(p):
            return True
        d = depth + 1
        strict = self.config.strict_variables
        if (membership(p) and relational(g)) or (relational(p) and membership(g)):
            return self._set_eq(p, g, d)  # x \in [a, b] against an inequality: the variable counts
        if isinstance(p, Assign) and isinstance(g, Assign):
            if label_key(p.label) == label_key(g.label) or not strict:
                return self.eq(p.value, g.value, d)
            return False
        if isinstance(g, Assign):
            if isinstance(p, Equation):
                return self._assign_as_equation(g, p)
            return self.eq(p, g.value, d)
        if isinstance(p, Assign):
            if isinstance(g, Equation):
                return self._assign_as_equation(p, g)
            return self.eq(p.value, g, d)
        if isinstance(p, Text) or isinstance(g, Text):
            return text_eq(p, g)
        if isinstance(p, Matrix) or isinstance(g, Matrix):
            return self._matrix_eq(p, g, d)
        if isinstance(p, Seq) or isinstance(g, Seq):
            return self._seq_eq(p, g, d)
        if isinstance(p, (Interval, SetUnion)) or isinstance(g, (Interval, SetUnion)):
            return self._set_eq(p, g, d)
        if isinstance(p, Rel) and isinstance(g, Rel):
            return self.ops.relations_eq(p, g)
        if isinstance(p, Equation) and isinstance(g, Equation):
            return self.ops.equations_eq(p, g)
        if isinstance(p, Ratio) or isinstance(g, Ratio):
            return self._ratio_eq(p, g, d)
        if isinstance(p, Leaf) and isinstance(g, Leaf):
            return self.ops.leaf_eq(p, g)
        return False

    def _at(self, depth: int) -> Callable[[Node, Node], bool]:
        """:meth:`eq` at nesting ``depth``, for the matching helpers."""
        return lambda a, b: self.eq(a, b, depth)

    def _assign_as_equation(self, a: Assign, e: Equation) -> bool:
        value = unwrap(a.value)
        if not isinstance(value, Leaf) or a.label_leaf is None:
            return False
        return self.ops.equations_eq(Equation(a.label_leaf, value), e)

    def _matrix_eq(self, p: Node, g: Node, d: int) -> bool:
        if isinstance(p, Matrix) and isinstance(g, Matrix):
            if len(p.rows) != len(g.rows) or len(p.rows[0]) != len(g.rows[0]):
                return False
            return all(self.eq(a, b, d) for ra, rb in zip(p.rows, g.rows, strict=True)
                       for a, b in zip(ra, rb, strict=True))
        matrix, other = (p, g) if isinstance(p, Matrix) else (g, p)
        if isinstance(other, Seq) and other.kind == "tuple":
            flat = [c for row in matrix.rows for c in row]
            if (len(matrix.rows) == 1 or len(matrix.rows[0]) == 1) and len(flat) == len(other.items):
                pairs = zip(flat, other.items, strict=True)
                return all(self.eq(a, b, d) if matrix is p else self.eq(b, a, d) for a, b in pairs)
            return False
        if isinstance(other, Leaf):
            return self.ops.leaf_matrix_eq(other, matrix)
        return False

    def _seq_eq(self, p: Node, g: Node, d: int) -> bool:
        if not (isinstance(p, Seq) and isinstance(g, Seq)):
            seq, other = (p, g) if isinstance(p, Seq) else (g, p)
            if seq.kind in _UNORDERED and not isinstance(other, (Interval, SetUnion, Rel)):
                ps = list(p.items) if p is seq else [p]
                gs = list(g.items) if g is seq else [g]
                return multiset_eq(ps, gs, self._at(d))
            if isinstance(other, Interval) and seq.kind == "tuple" and len(seq.items) == 2:
                as_interval = Interval(seq.items[0], seq.items[1], False, False)
                if all(isinstance(x, Leaf) for x in seq.items):
                    return self._set_eq(as_interval, other, d) if seq is p else self._set_eq(other, as_interval, d)
            if isinstance(other, (Rel, SetUnion)) and seq.kind == "tuple" and len(seq.items) == 2:
                if all(isinstance(x, Leaf) for x in seq.items):
                    as_interval = Interval(seq.items[0], seq.items[1], False, False)
                    return self._set_eq(as_interval, other, d) if seq is p else self._set_eq(other, as_interval, d)
            return False
        pk, gk = p.kind, g.kind
        if pk == "named" and gk == "named":
            pm = {label_key(a.label): a.value for a in p.items}
            gm = {label_key(a.label): a.value for a in g.items}
            if set(pm) == set(gm):
                return all(self.eq(pm[k], gm[k], d) for k in gm)
            if self.config.strict_variables:
                return False
        if pk == "named":
            p = Seq("tuple", tuple(a.value for a in p.items))
            pk = "tuple"
        if gk == "named":
            g = Seq("tuple", tuple(a.value for a in g.items))
            gk = "tuple"
        if {pk, gk} == {"set", "tuple"}:
            return False  # a set is not an ordered tuple
        unordered = pk in _UNORDERED and gk in _UNORDERED
        if unordered and not self.config.unordered_lists:
            unordered = pk in ("set", "pm") or gk in ("set", "pm")
        if not unordered:
            return len(p.items) == len(g.items) and all(
                self.eq(a, b, d) for a, b in zip(p.items, g.items, strict=True)
            )
        return multiset_eq(list(p.items), list(g.items), self._at(d))

    def _set_eq(self, p: Node, g: Node, d: int) -> bool:
        if relational(p) and relational(g):
            return self.ops.relation_sets_eq(p, g)
        if relational(g):  # a set for an inequality gold: the same answer, always
            return self.ops.relation_set_eq(g, p, False)
        if relational(p):  # an inequality for a set gold: only if so configured (see MathConfig)
            return self.config.relation_matches_set and self.ops.relation_set_eq(p, g, True)
        if isinstance(p, Interval) and isinstance(g, Interval):
            return (p.lo_closed == g.lo_closed and p.hi_closed == g.hi_closed
                    and self.eq(p.lo, g.lo, d) and self.eq(p.hi, g.hi, d))
        if isinstance(p, SetUnion) and isinstance(g, SetUnion) and len(p.items) == len(g.items):
            try:
                if multiset_eq(list(p.items), list(g.items), self._at(d)):
                    return True
            except Undecided:
                pass
        if isinstance(p, (Interval, SetUnion, Seq)) and isinstance(g, (Interval, SetUnion, Seq)):
            return self.ops.sets_eq(p, g)
        return False

    def _ratio_eq(self, p: Node, g: Node, d: int) -> bool:
        if isinstance(p, Ratio) and isinstance(g, Ratio):
            if len(p.parts) != len(g.parts):
                return False
            return all(self.eq(a, b, d) for a, b in zip(p.parts, g.parts, strict=True))
        return False


def compare(preds: list[Node], golds: list[Node], ops: LeafOps, config: MathConfig) -> tuple[str, str]:
    """(reason, detail) for the prediction readings against the gold readings."""
    cmp = Comparator(ops, config)
    hedged = False
    undecided = False
    for p in preds:
        for g in golds:
            if is_hedge(p, g):
                try:  # "1/2, or 50%": the same value written twice is not a hedge
                    if all(cmp.eq(alt, g) for alt in alternatives(p)):
                        return "ok", "equivalent (every alternative)"
                except Undecided:
                    undecided = True
                hedged = True
                continue
            try:
                if cmp.eq(p, g):
                    return "ok", "equivalent"
            except Undecided:
                undecided = True
    if undecided:
        raise Undecided
    if hedged:
        return "unparseable", "hedged answer: several alternatives for one value"
    return "wrong", "not equivalent"
