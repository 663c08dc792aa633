"""Helpers of the structural comparison (:mod:`~starloop.verifiers.math.compare`): pure Python, no SymPy.

- shapes: :func:`unwrap` (a one-item list is its item), :func:`is_hedge` ("14 or 16" for one
  value), :func:`relational` (an inequality, or a union with one: ``x < -2 or x > 3``),
  :func:`membership` (``x \\in [a, b]``: a set of the values of a named variable);
- matching: :func:`multiset_eq` (items in any order), :func:`text_eq` (word answers);
- :func:`leaf_texts` (every scalar of a structure) and :func:`may_be_undefined`: whether an
  answer could involve a division by zero (``\\frac{1}{0}``, ``\\frac{1}{1-1}``, ``\\infty - \\infty``),
  in which case two identical texts are not taken as equal without evaluating them (an
  undefined value equals nothing, not even itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starloop.verifiers.math.nodes import Assign, Interval, Leaf, Node, Rel, Seq, SetUnion, Text, fast_number
from starloop.verifiers.math.parse import text_key

_UNDEFINED_RISK = re.compile(
    r"/|\\frac|\\div|\\infty|\^\s*\{?\s*-|\\(?:log|ln|tan|cot|sec|csc|binom|lim)(?![A-Za-z])|!|\bmod\b"
)


def unwrap(n: Node) -> Node:
    while isinstance(n, Seq) and len(n.items) == 1 and n.kind in ("list", "alts", "set", "pm"):
        n = n.items[0]
    return n


def size(n: Node) -> int:
    n = unwrap(n)
    if isinstance(n, Seq):
        return len(n.items)
    if isinstance(n, Assign):
        return size(n.value)
    return 1


def is_hedge(p: Node, g: Node) -> bool:
    """A prediction that offers alternatives ("14 or 16") where the gold is one value."""
    p = unwrap(p)
    if isinstance(p, Assign):
        p = unwrap(p.value)
    if not (isinstance(p, Seq) and p.kind == "alts" and len(p.items) > 1):
        return False
    return size(g) == 1


def alternatives(p: Node) -> tuple[Node, ...]:
    """The alternatives of a hedge ("14 or 16", ``x = 14 or x = 16``)."""
    p = unwrap(p)
    if isinstance(p, Assign):
        return tuple(Assign(p.label, v, p.label_leaf) for v in unwrap(p.value).items)  # type: ignore[union-attr]
    return p.items  # type: ignore[union-attr]


def relational(n: Node) -> bool:
    """An inequality (chain), or a union that has one: ``x < -2 or x > 3``."""
    return isinstance(n, Rel) or (isinstance(n, SetUnion) and any(isinstance(x, Rel) for x in n.items))


def membership(n: Node) -> bool:
    """``x \\in [a, b]`` (or a union of intervals): a set of the values of a named variable."""
    return isinstance(n, Assign) and isinstance(n.value, (Interval, SetUnion))


def multiset_eq(ps: list[Node], gs: list[Node], eq: Callable[[Node, Node], bool]) -> bool:
    """Whether ``ps`` and ``gs`` hold the same items under ``eq``, in any order (repeats ignored)."""
    ps, gs = _dedupe(ps, eq), _dedupe(gs, eq)
    if len(ps) != len(gs):
        return False
    unmatched = list(range(len(ps)))
    for g in gs:
        for k in unmatched:
            if eq(ps[k], g):
                unmatched.remove(k)
                break
        else:
            return False
    return True


def _dedupe(items: list[Node], eq: Callable[[Node, Node], bool]) -> list[Node]:
    out: list[Node] = []
    for it in items:
        if not any((it == o and not may_be_undefined(it)) or eq(it, o) for o in out):
            out.append(it)
    return out


def text_eq(p: Node, g: Node) -> bool:
    """Two textual answers (words, or a single letter, which is case-sensitive)."""
    pt, gt = _text_of(p), _text_of(g)
    if pt is None or gt is None:
        return False
    if len(pt) > 1 or len(gt) > 1:
        return pt.lower() == gt.lower()
    return pt == gt


def _text_of(n: Node) -> str | None:
    if isinstance(n, Text):
        return n.value
    if isinstance(n, Leaf) and re.fullmatch(r"[A-Za-z][A-Za-z' ]*", n.text):
        return text_key(n.text)
    return None


def leaf_texts(node: Any) -> set[str]:
    """The text of every scalar inside a structure."""
    if isinstance(node, Leaf):
        return {node.text}
    if isinstance(node, (list, tuple)):
        return set().union(*(leaf_texts(n) for n in node)) if node else set()
    out: set[str] = set()
    for name in ("items", "parts", "rows", "value", "lhs", "rhs", "lo", "hi", "label_leaf"):
        if hasattr(node, name):
            out |= leaf_texts(getattr(node, name))
    return out


def text_may_be_undefined(text: str) -> bool:
    """Whether a scalar could be undefined (a division, ``\\infty``, a logarithm...) and is not a plain number."""
    if not _UNDEFINED_RISK.search(text):
        return False
    value = fast_number(text)
    return value is None  # a plain number (1/2, \infty) is what it says


def may_be_undefined(node: Any) -> bool:
    """Whether any scalar of a structure could be undefined (see :func:`text_may_be_undefined`)."""
    return any(text_may_be_undefined(t) for t in leaf_texts(node))
