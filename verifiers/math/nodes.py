"""What an answer is read into: the node types built by :mod:`starloop.verifiers.math.parse`.

- ``Leaf``: one scalar expression in LaTeX, with percent / degree / decimal flags.
- ``Text``: a word answer (``\\text{Evelyn}``, ``odd``, a multiple-choice letter).
- ``Seq``: several values: ``list`` (bare ``1, 2``: any order by default), ``alts``
  (joined by "or": a hedge unless the gold has several values), ``tuple`` (``(1, 2)``,
  ordered), ``set`` (``\\{1, 2\\}``), ``pm`` (what ``a \\pm b`` expands to), ``named``
  (``x = 1, y = 2``: matched by name when both sides name their values).
- ``Interval`` / ``SetUnion``, ``Rel`` (inequality chain), ``Equation`` (``2x + 4y = 3``),
  ``Assign`` (``x = 5``: a label and a value), ``Ratio`` (``7:32``), ``Matrix``.

Also the size limits of a structure, :class:`Unreadable`, and :func:`fast_number`: the exact
value of a leaf that is a plain number (integer, decimal, fraction, mixed number, scientific
notation), used both when reading (units after a number) and by the cheap comparison.
Pure Python, no SymPy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MAX_ITEMS = 64
MAX_DEPTH = 24
MAX_FAST_DIGITS = 400

_DECIMAL = re.compile(r"(?<![\d.])\d*\.\d+(?![\d.])")


class Unreadable(ValueError):
    """The answer text has no structure we can read (empty, unbalanced, too deep...)."""


# --------------------------------------------------------------------------- structure


@dataclass(frozen=True)
class Leaf:
    text: str
    percent: bool = False
    degrees: bool = False

    @property
    def approx(self) -> bool:
        """A decimal literal with digits after the point: possibly a rounded value."""
        return bool(_DECIMAL.search(self.text))


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Seq:
    kind: str  # list, alts, tuple, set, pm, named
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Interval:
    lo: Leaf
    hi: Leaf
    lo_closed: bool
    hi_closed: bool


@dataclass(frozen=True)
class SetUnion:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Rel:
    parts: tuple[Leaf, ...]
    ops: tuple[str, ...]  # "<", "<=", ">", ">=", "!="


@dataclass(frozen=True)
class Equation:
    lhs: Leaf
    rhs: Leaf


@dataclass(frozen=True)
class Assign:
    label: str
    value: Any
    label_leaf: Leaf | None = None


@dataclass(frozen=True)
class Ratio:
    parts: tuple[Leaf, ...]


@dataclass(frozen=True)
class Matrix:
    rows: tuple[tuple[Leaf, ...], ...]


Node = Leaf | Text | Seq | Interval | SetUnion | Rel | Equation | Assign | Ratio | Matrix


# --------------------------------------------------------------------------- numbers

_NUM_PATTERNS = [
    (re.compile(r"([-+]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+)|\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?)?"), "dec"),
    (re.compile(r"([-+]?)\\frac\{\s*([-+]?\d+)\s*\}\{\s*([-+]?\d+)\s*\}"), "frac"),
    (re.compile(r"([-+]?)(\d+)/(\d+)"), "slash"),
    (re.compile(r"([-+]?)(\d+)\s*\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}"), "mixed"),
    (re.compile(r"([-+]?)(\d+) (\d+)/(\d+)"), "mixed"),
    (re.compile(r"([-+]?)\s*\\infty"), "inf"),
    (re.compile(r"([-+]?)\\frac\{\s*(\d+(?:\.\d+)?)\s*\}\{\s*(\d+(?:\.\d+)?)\s*\}"), "decfrac"),
]


def fast_number(text: str) -> Fraction | float | None:
    """The exact value of a plain number, or None when it is not one (or too large to risk)."""
    if len(text) > 600:
        return None
    t = re.sub(r"\s+", " ", text).strip()
    t = re.sub(r"(?<=[^\d ]) | (?=[^\d ])", "", t)  # keep only spaces between digits ("3 1/2")
    if not t:
        return None
    if sum(c.isdigit() for c in t) > MAX_FAST_DIGITS:
        return None
    t = re.sub(r"^\((.*)\)$", r"\1", t)
    t = re.sub(r"^\{(.*)\}$", r"\1", t)
    for pat, kind in _NUM_PATTERNS:
        m = pat.fullmatch(t)
        if not m:
            continue
        sign = -1 if m.group(1) == "-" else 1
        try:
            if kind == "dec":
                value = Fraction(m.group(2))
                exp = m.group(3) or m.group(4)
                if exp is not None:
                    if abs(int(exp)) > MAX_FAST_DIGITS:
                        return None
                    value *= Fraction(10) ** int(exp)
            elif kind in ("frac", "slash", "decfrac"):
                value = Fraction(m.group(2)) / Fraction(m.group(3))
            elif kind == "mixed":
                whole, num, den = (int(m.group(i)) for i in (2, 3, 4))
                if num >= den:
                    return None  # "2\frac{4}{2}" is a product, not a mixed number
                value = whole + Fraction(num, den)
            else:
                return float("inf") * sign
        except (ZeroDivisionError, ValueError):
            return None
        return sign * value
    return None
