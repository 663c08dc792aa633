"""Read an extracted answer into a small structure and compare two such structures.

Pure Python, no SymPy: this module runs in the calling process for the cheap cases and in
the worker processes for the rest. It decides what *kind* of answer a string is, and leaves
the mathematics of each scalar to a pluggable :class:`LeafOps`:

- ``Leaf``: one scalar expression in LaTeX, with percent / degree / decimal flags.
- ``Text``: a word answer (``\\text{Evelyn}``, ``odd``, a multiple-choice letter).
- ``Seq``: several values: ``list`` (bare ``1, 2``: any order by default), ``alts``
  (joined by "or": a hedge unless the gold has several values), ``tuple`` (``(1, 2)``,
  ordered), ``set`` (``\\{1, 2\\}``), ``pm`` (what ``a \\pm b`` expands to), ``named``
  (``x = 1, y = 2``: matched by name when both sides name their values).
- ``Interval`` / ``Union``, ``Rel`` (inequality chain), ``Equation`` (``2x + 4y = 3``),
  ``Assign`` (``x = 5``: a label and a value), ``Ratio`` (``7:32``), ``Matrix``.

:class:`FastOps` compares plain numbers (integers, decimals, fractions, mixed numbers,
scientific notation) exactly with :class:`fractions.Fraction` and raises :class:`Undecided`
for anything else; the worker processes use the SymPy ops of ``math_equiv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MAX_ITEMS = 64
MAX_DEPTH = 24
MAX_FAST_DIGITS = 400


class Unreadable(ValueError):
    """The answer text has no structure we can read (empty, unbalanced, too deep...)."""


class Undecided(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The cheap comparison cannot decide; the SymPy comparison must."""


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


# --------------------------------------------------------------------------- normalization

_KNOWN_CMDS = (
    "frac|dfrac|tfrac|cfrac|sqrt|left|right|le|leq|ge|geq|lt|gt|ne|neq|pi|cdot|times|div|boxed|"
    "fbox|text|textbf|textit|textrm|mathrm|mathbf|mbox|infty|pm|mp|in|cup|cap|sin|cos|tan|cot|"
    "sec|csc|log|ln|exp|circ|approx|quad|qquad|dots|ldots|cdots|theta|alpha|beta|gamma|delta|"
    "lambda|mu|sigma|omega|phi|emptyset|varnothing|angle|binom|dbinom|operatorname|mathbb|"
    "langle|rangle|lfloor|rfloor|lceil|rceil|arcsin|arccos|arctan"
)
_DOUBLED_BACKSLASH = re.compile(r"(?<!\\)\\\\(?=(?:" + _KNOWN_CMDS + r")(?![A-Za-z])|[%$])")
_UNICODE = {
    "−": "-", "–": "-", "—": "-", "×": r"\times ", "÷": r"\div ", "≤": r"\le ", "≥": r"\ge ",
    "≠": r"\ne ", "∞": r"\infty ", "π": r"\pi ", "√": r"\sqrt ", "·": r"\cdot ", "∪": r"\cup ",
    "∈": r"\in ", "±": r"\pm ", "∓": r"\mp ", "²": "^2", "³": "^3", "≈": r"\approx ",
    "\u200b": "", "\xa0": " ", "\u2009": " ", "\u202f": " ", "’": "'",
}
_UNICODE_RE = re.compile("|".join(re.escape(k) for k in _UNICODE))
_SIZING = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])\s*(\.)?"
)
_SPACING = re.compile(r"\\q?quad|(?<!\\)\\(?:[,;: ]|thinspace|medspace|thickspace|enspace)(?![A-Za-z])|~")
_TEXT_CMD = re.compile(
    r"\\(?:mbox|textnormal|textbf|textit|textrm|textsf|texttt|textup|mathrm|mathbf|mathit|mathsf|"
    r"mathnormal|text)\s*\{"
)
_DEGREE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°")
_DECIMAL = re.compile(r"(?<![\d.])\d*\.\d+(?![\d.])")
_THOUSANDS = re.compile(r"(?<![\w.,])([-+]?[1-9]\d{0,2})((?:,\d{3})+)(\.\d+)?(?!\d|,\d)")
_SPACE_THOUSANDS = re.compile(r"(?<![\w.,/])([-+]?[1-9]\d{0,2})((?: \d{3})+)(\.\d+)?(?![\w/]| ?[/\d])")


def normalize(s: str) -> str:
    """Canonical spelling of an answer: LaTeX variants, spacing, digit grouping, unicode."""
    s = s.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    s = _DOUBLED_BACKSLASH.sub(r"\\", s)
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = s.replace(r"\displaystyle", " ").replace(r"\limits", "").replace(r"\nolimits", "")
    s = s.replace(r"\langle", "(").replace(r"\rangle", ")")
    s = _SIZING.sub("", s)
    # Digit grouping written with LaTeX spacing: 14{,}916, 11,\!111, 1\,000\,000.
    s = re.sub(r"\s*\{\s*,\s*\}\s*", ",", s)
    s = re.sub(r",\s*\\!\s*", ",", s)
    s = re.sub(r"(?<=\d)\s*\\[,!; ]\s*(?=\d{3}(?!\d))", "", s)
    s = s.replace(r"\!", "")
    s = re.sub(r"\\text\s*\{\s*(and|or)\s*\}", r" \1 ", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\\(?:d|t|c)frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\(?:d|t)binom(?![A-Za-z])", r"\\binom", s)
    # Brace-less arguments: \frac12, \frac1{72}, \frac{3}3, \sqrt3, \sqrt x.
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*(?=\{)", r"\\frac{\1}", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", s)
    s = _TEXT_CMD.sub(r"\\text{", s)
    s = re.sub(r"\\text\{([A-Za-z])\}", r"\1", s)  # \mathrm{e}, \text{E}: a letter (\text{ m} is a unit)
    s = _DEGREE.sub("°", s)
    s = s.replace(r"\%", "%")
    s = re.sub(r"\\(?:ldots|cdots|dots|dotsc|dotsb)(?![A-Za-z])", " ", s)
    s = re.sub(r"(?<![A-Za-z\\])(?:infinity|inf)(?![A-Za-z])", r"\\infty", s)
    s = re.sub(r"(?<![\d}])\.(?=\d)", "0.", s)  # .5 -> 0.5
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?:\s*[.;,:]\s*)+$", "", s)  # trailing punctuation
    s = re.sub(r"^\s*(?:=|:)\s*", "", s)
    return s


def _depths(s: str) -> list[int]:
    """Bracket depth before each character (``()[]{}`` and ``\\begin``/``\\end`` count)."""
    out = [0] * len(s)
    d = 0
    i, n = 0, len(s)
    while i < n:
        out[i] = d
        if s.startswith("\\begin{", i) or s.startswith("\\end{", i):
            j = s.find("}", i)
            j = n - 1 if j < 0 else j
            for k in range(i, j + 1):
                out[k] = d
            d = d + 1 if s[i + 1] == "b" else max(d - 1, 0)
            i = j + 1
            continue
        c = s[i]
        if c in "([{":
            d += 1
        elif c in ")]}":
            d = max(d - 1, 0)
            out[i] = d
        i += 1
    return out


def _split(s: str, pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """Split ``s`` at top-level matches of ``pattern``: (pieces, separators)."""
    depth = _depths(s)
    pieces, seps, pos = [], [], 0
    for m in pattern.finditer(s):
        if m.start() < len(depth) and depth[m.start()] == 0 and m.end() > m.start():
            pieces.append(s[pos : m.start()])
            seps.append(m.group(0))
            pos = m.end()
    pieces.append(s[pos:])
    return pieces, seps


def _join_thousands(s: str) -> str:
    """Drop digit-group commas / spaces at the top level (``7,425,000`` -> ``7425000``)."""
    depth = _depths(s)

    def repl(m: re.Match[str]) -> str:
        if depth[m.start()] != 0:
            return m.group(0)
        return m.group(1) + m.group(2).replace(",", "").replace(" ", "") + (m.group(3) or "")

    s = _THOUSANDS.sub(repl, s)
    depth = _depths(s)
    return _SPACE_THOUSANDS.sub(repl, s)


_LIST_SEP = re.compile(
    r",|;|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])|(?<=[\d)\]}])or(?=[A-Za-z(\[\\-])"
)
_REL_OP = re.compile(
    r"<=|>=|!=|:=|=|<|>|\\leq?slant(?![A-Za-z])|\\geq?slant(?![A-Za-z])|\\leq?(?![A-Za-z])|"
    r"\\geq?(?![A-Za-z])|\\lt(?![A-Za-z])|\\gt(?![A-Za-z])|\\neq?(?![A-Za-z])|"
    r"\\approx(?![A-Za-z])|\\in(?![A-Za-z])"
)
_OP_NAME = {
    "<=": "<=", ">=": ">=", "!=": "!=", ":=": "=", "=": "=", "<": "<", ">": ">",
    r"\le": "<=", r"\leq": "<=", r"\leqslant": "<=", r"\leslant": "<=",
    r"\ge": ">=", r"\geq": ">=", r"\geqslant": ">=", r"\geslant": ">=",
    r"\lt": "<", r"\gt": ">", r"\ne": "!=", r"\neq": "!=", r"\approx": "~", r"\in": "in",
}
_CUP = re.compile(r"\\cup(?![A-Za-z])|\\bigcup(?![A-Za-z])|(?<![A-Za-z\\])U(?![A-Za-z])")
_RATIO = re.compile(r"(?<![:\\])(?:\\colon|:)(?![:=])")
_MATRIX_ENV = re.compile(
    r"^\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$",
    re.DOTALL,
)
_UNIT_WORDS = (
    "units?|unit|dollars?|cents?|yuan|euros?|pounds?|rupees?|usd|meters?|metres?|cm|mm|km|m|"
    "inches|inch|in|feet|foot|ft|yards?|yd|miles?|mi|kg|g|mg|grams?|kilograms?|seconds?|sec|s|"
    "minutes?|min|hours?|hrs?|h|days?|weeks?|months?|years?|liters?|litres?|ml|l|sq|square|"
    "cubic|degrees?|deg|mph|km/h|m/s|people|persons?|students?|ways?|times|points?|items?|"
    "apples?|marbles?|cookies?|coins?|balls?|cars?|boxes?|books?|pages?|tiles?|pieces?"
)
_TRAILING_UNITS = re.compile(
    r"(?<=[\d}).%°])\s+(?:(?:" + _UNIT_WORDS + r")(?:\^?\{?[23]\}?)?(?:\s+|$))+$", re.IGNORECASE
)
_TRAILING_TEXT = re.compile(r"\s*\\text\{[^{}]*\}(?:\^\{?[23]\}?)?\s*$")
_GLUED_UNIT = re.compile(
    r"(?<=\d)\s*(?:cm|mm|km|kg|mg|ml|ft|m\^2|m\^3|cm\^2|cm\^3|m²|cm²)\s*$", re.IGNORECASE
)
_NUMBER_THEN_WORDS = re.compile(r"^([-+]?[\d.,/ ]*\d)\s+[A-Za-z]{2,}(?:[\s-]+[A-Za-z]+)*$")
_CURRENCY = re.compile(r"\\\$|\$|€|£|¥|₹|(?<![A-Za-z])(?:USD|EUR|Rs\.?)(?![A-Za-z])")
_PERCENT = re.compile(r"\s*(?:%|\bpercentage\b|\bpercent\b|\bpct\b)\s*$", re.IGNORECASE)
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "tanh", "mod", "gcd", "lcm", "max", "min", "det", "infty", "inf",
}


def _strip_wrappers(s: str) -> str:
    """Remove a whole-string ``\\boxed{}`` / ``{}`` / matching ``$``."""
    for _ in range(MAX_DEPTH):
        t = s.strip()
        m = re.match(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", t, re.DOTALL)
        if m and _balanced(m.group(1)):
            s = m.group(1)
            continue
        if t.startswith("{") and t.endswith("}") and _balanced(t[1:-1]) and _closes_at_end(t, 0):
            s = t[1:-1]
            continue
        return t
    raise Unreadable("answer is nested too deeply")


def _balanced(s: str) -> bool:
    d = 0
    for c in s:
        if c in "([{":
            d += 1
        elif c in ")]}":
            d -= 1
            if d < 0:
                return False
    return d == 0


def _closes_at_end(s: str, start: int) -> bool:
    """Whether the bracket opened at ``start`` is closed by the last character."""
    d = 0
    for i in range(start, len(s)):
        c = s[i]
        if c in "([{":
            d += 1
        elif c in ")]}":
            d -= 1
            if d == 0:
                return i == len(s) - 1
    return False


def is_label(s: str) -> bool:
    """A name that a value is assigned to: ``x``, ``f(x)``, ``a_{37}``, ``|AB|``, ``(p,q)``, ``A:B``."""
    t = re.sub(r"_\{[^{}]*\}|_\w", "", s)
    t = re.sub(r"\\text\{([^{}]*)\}", r"\1", t)
    t = re.sub(r"\\(?:frac|overline|vec|mathbf|angle|hat|bar)\b", "", t)
    t = t.strip()
    if not t or re.search(r"\d", t) or not re.search(r"[A-Za-z]", t):
        return False
    if re.search(r"[+\-*^=<>]|\\(?:cdot|times|sqrt|sum|int|pm)", t):
        return False
    return True


def label_key(s: str) -> str:
    """Comparable spelling of a label; ``W(x)`` and ``W(n)`` name the same function."""
    t = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    t = re.sub(r"_\{([^{}]*)\}", r"_\1", t)
    t = re.sub(r"\s+", "", t)
    return re.sub(r"([A-Za-z])\([A-Za-z]\)", r"\1(.)", t)


def _has_letters(s: str) -> bool:
    t = re.sub(r"\\[A-Za-z]+", " ", s)
    return bool(re.search(r"[A-Za-z]", t)) or bool(
        re.search(r"\\(?!frac|sqrt|cdot|times|div|pi|infty|left|right|binom)[A-Za-z]+", s)
    )


def read_answer(s: str) -> list[Node]:
    """Structures for answer text ``s``: usually one; two for an ambiguous ``2,74``."""
    if len(s) > 5000:
        raise Unreadable("answer longer than 5000 characters")
    t = normalize(s)
    t = _strip_wrappers(t)
    if not t:
        raise Unreadable("empty answer")
    if not _balanced(re.sub(r"\\[{}]", "", t)) and not _is_interval_text(t):
        raise Unreadable("unbalanced brackets")
    readings: list[Node] = []
    m = re.fullmatch(r"([-+]?\d+),(\d+)", t)
    if m and not _THOUSANDS.fullmatch(t) and (
        len(m.group(2)) >= 2 or m.group(1).lstrip("+-") == "0" or len(m.group(1).lstrip("+-")) >= 4
    ):
        # "2,74": a decimal comma or a list of two numbers; either reading may match.
        readings.append(_parse_list(t, 0))
        readings.append(Leaf(f"{m.group(1)}.{m.group(2)}"))
        return readings
    return [_parse_list(_join_thousands(t), 0)]


def _is_interval_text(t: str) -> bool:
    return bool(re.search(r"[(\[].*[)\]]", t))


def _parse_list(s: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise Unreadable("answer is nested too deeply")
    s = s.strip()
    pieces, seps = _split(s, _LIST_SEP)
    if len(pieces) > MAX_ITEMS:
        raise Unreadable("too many items")
    if len(pieces) == 1:
        return _parse_item(s, depth + 1)
    # A trailing "and"/"or" with nothing after it ("19, 46, and 82" leaves an empty piece).
    kept = [(p, sep) for p, sep in zip(pieces, [None, *seps], strict=True) if p.strip()]
    if ";" in seps and "," in seps:
        groups, _ = _split(s, re.compile(";"))
        return Seq("list", tuple(_parse_list(g, depth + 1) for g in groups if g.strip()))
    items = [_parse_item(p, depth + 1) for p, _ in kept]
    words = {sep.strip().lower() for sep in seps}
    kind = "alts" if "or" in words and "and" not in words else "list"
    return _combine(kind, items)


def _combine(kind: str, items: list[Node]) -> Node:
    """Group assignments: ``x = 1, 2`` and ``x = 1, x = 2`` are values of x; ``x = 1, y = 2`` names them."""
    if all(isinstance(it, Assign) for it in items):
        keys = [label_key(it.label) for it in items]
        if len(set(keys)) == 1:
            return Assign(items[0].label, _seq(kind, [it.value for it in items]), items[0].label_leaf)
        if len(set(keys)) == len(keys):
            return Seq("named", tuple(items))
        return _seq(kind, items)
    if isinstance(items[0], Assign) and not any(isinstance(it, (Assign, Rel, Equation)) for it in items[1:]):
        first = items[0]
        return Assign(first.label, _seq(kind, [first.value, *items[1:]]), first.label_leaf)
    return _seq(kind, items)


def _seq(kind: str, items: list[Node]) -> Seq:
    flat: list[Node] = []
    for it in items:
        if isinstance(it, Seq) and it.kind == "pm" and kind in ("list", "alts", "set"):
            flat.extend(it.items)
        else:
            flat.append(it)
    return Seq(kind, tuple(flat))


def _parse_item(s: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise Unreadable("answer is nested too deeply")
    s = _strip_wrappers(s)
    if not s:
        raise Unreadable("empty item")
    text = _whole_text(s)
    if text is not None:
        return text
    pieces, seps = _split(s, _REL_OP)
    if seps:
        return _parse_relation([p.strip() for p in pieces], [_OP_NAME.get(x, x) for x in seps], depth)
    pieces, seps = _split(s, _CUP)
    if seps:
        return SetUnion(tuple(_parse_item(p, depth + 1) for p in pieces))
    matrix = _matrix_body(s)
    if matrix is None and s[0] in "([" and s[-1] in ")]" and _closes_at_end(s, 0):
        matrix = _matrix_body(s[1:-1].strip())
    if matrix is not None:
        return _parse_matrix(matrix)
    pieces, seps = _split(s, _RATIO)
    if seps and all(p.strip() for p in pieces):
        return Ratio(tuple(_leaf(p) for p in pieces))
    if s.startswith("\\{") and s.endswith("\\}") and _closes_at_end(s, 1):
        inner = s[2:-2].strip()
        if not inner:
            return Seq("set", ())
        node = _parse_list(inner, depth + 1)
        items = node.items if isinstance(node, Seq) and node.kind in ("list", "alts") else (node,)
        return _seq("set", list(items))
    if s[0] in "([" and s[-1] in ")]" and _closes_at_end(s, 0):
        inner = s[1:-1]
        parts, seps = _split(inner, re.compile(","))
        if len(parts) == 1 and ";" in inner:
            parts, seps = _split(inner, re.compile(";"))
        if len(parts) == 2 and not (s[0] == "(" and s[-1] == ")"):
            return Interval(_leaf(parts[0]), _leaf(parts[1]), s[0] == "[", s[-1] == "]")
        if len(parts) >= 2:
            return Seq("tuple", tuple(_parse_item(p, depth + 1) for p in parts))
        if s[0] == "(":
            return _parse_item(inner, depth + 1)
    if re.search(r"\\(?:pm|mp)(?![A-Za-z])", s):
        return _expand_pm(s)
    return _leaf(s)


def _whole_text(s: str) -> Text | None:
    m = re.fullmatch(r"\\text\{([^{}]*)\}", s)
    if m:
        inner = m.group(1).strip()
        if not re.search(r"[A-Za-z]", inner):
            return None
        return Text(_text_key(inner))
    m = re.fullmatch(r"\(([A-Za-z])\)", s)
    if m:
        return Text(m.group(1))
    if re.fullmatch(r"[A-Za-z][A-Za-z' ]*[A-Za-z]", s) and (" " in s or len(s) >= 3):
        words = s.lower().split()
        if not any(w in _MATH_WORDS for w in words):
            return Text(_text_key(s))
    return None


def _text_key(s: str) -> str:
    s = re.sub(r"\s+", " ", s.strip().strip("."))
    m = re.fullmatch(r"\(?([A-Za-z])\)?", s)
    if m:
        return m.group(1)
    return s.lower()


def _parse_relation(parts: list[str], ops: list[str], depth: int) -> Node:
    if "~" in ops:
        first = ops.index("~")
        if "=" in ops[:first]:
            parts, ops = parts[: first + 1], ops[:first]
        else:
            ops = ["=" if op == "~" else op for op in ops]
    if not all(parts):
        raise Unreadable("relation with an empty side")
    if "in" in ops:
        if len(ops) == 1 and (is_label(parts[0]) or not parts[0]):
            return _parse_list(parts[1], depth + 1)
        raise Unreadable("unsupported membership")
    if all(op == "=" for op in ops):
        first, last = parts[0], parts[-1]
        if is_label(first):
            return Assign(first, _parse_item(last, depth + 1), _leaf(first))
        if len(parts) >= 3 or not (_has_letters(first) or _has_letters(last)):
            return _parse_item(last, depth + 1)  # a computation: the value is the last part
        return Equation(_leaf(first), _leaf(last))
    if "=" in ops:
        raise Unreadable("mixed equality and inequality")
    return Rel(tuple(_leaf(p) for p in parts), tuple(ops))


def _matrix_body(s: str) -> str | None:
    m = _MATRIX_ENV.match(s)
    if m is None or "\\begin{" in m.group(2) or "\\end{" in m.group(2):
        return None
    return m.group(2)


def _parse_matrix(body: str) -> Matrix:
    rows = [r for r in re.split(r"\\\\", body)]
    while rows and not rows[-1].strip():
        rows.pop()
    cells = tuple(tuple(_leaf(c) for c in r.split("&")) for r in rows)
    if not cells or any(len(r) != len(cells[0]) for r in cells):
        raise Unreadable("ragged matrix")
    return Matrix(cells)


def _expand_pm(s: str) -> Node:
    out = [s]
    for _ in range(2):
        nxt: list[str] = []
        for t in out:
            m = re.search(r"\\(pm|mp)(?![A-Za-z])", t)
            if not m:
                nxt.append(t)
                continue
            first, second = ("+", "-") if m.group(1) == "pm" else ("-", "+")
            nxt.append(t[: m.start()] + first + t[m.end() :])
            nxt.append(t[: m.start()] + second + t[m.end() :])
        out = nxt
    if any(re.search(r"\\(?:pm|mp)(?![A-Za-z])", t) for t in out):
        raise Unreadable("too many \\pm")
    return Seq("pm", tuple(_leaf(t) for t in out))


def _leaf(s: str) -> Leaf:
    """A scalar: currency, units, percent and degree marks are stripped and remembered."""
    t = _strip_wrappers(s).strip()
    percent = degrees = False
    for _ in range(4):
        before = t
        t = _CURRENCY.sub(" ", t).strip()
        m = _PERCENT.search(t)
        if m and m.start() > 0:
            percent, t = True, t[: m.start()].strip()
        if "°" in t:
            degrees, t = True, t.replace("°", " ").strip()
        stripped = _TRAILING_TEXT.sub("", t).strip()
        if stripped and stripped != t:
            t = stripped
        stripped = _TRAILING_UNITS.sub("", t).strip()
        if stripped and stripped != t and not _ends_in_math_word(t):
            if re.search(r"(?i)\bdeg(?:rees?)?\s*$", t):
                degrees = True
            t = stripped
        stripped = _GLUED_UNIT.sub("", t).strip()
        if stripped and stripped != t:
            t = stripped
        m = _NUMBER_THEN_WORDS.match(t)
        if m and fast_number(m.group(1)) is not None and not _ends_in_math_word(t):
            t = m.group(1)  # "2 3/4 cups": words after a plain number are its unit
        t = _strip_wrappers(t)
        if t == before:
            break
    if not t:
        raise Unreadable("empty value")
    return Leaf(re.sub(r"\s+", " ", t), percent, degrees)


def _ends_in_math_word(t: str) -> bool:
    m = re.search(r"([A-Za-z]+)\s*$", t)
    return bool(m) and m.group(1).lower() in _MATH_WORDS


# --------------------------------------------------------------------------- numbers

_INT = r"[-+]?\d+"
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


def round_to(x: Fraction, places: int) -> Fraction:
    return Fraction(round(x, places))


def numbers_close(a: Fraction, b: Fraction, a_approx: bool, b_approx: bool, config: Any) -> bool:
    """Equality allowed by the configured tolerance, for a pair where one side is a decimal."""
    if not (a_approx or b_approx):
        return False
    # A decimal that reads zero never stands for a nonzero exact value (1/3000! is not 0.0).
    if (a == 0 and a_approx and b != 0 and not b_approx) or (b == 0 and b_approx and a != 0 and not a_approx):
        return False
    rounding = getattr(config, "float_rounding", None)
    if rounding is not None and round_to(a, rounding) == round_to(b, rounding):
        return True
    rel_tol = getattr(config, "rel_tol", 0.0) or 0.0
    if rel_tol > 0 and abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b)):
        return True
    return False


# --------------------------------------------------------------------------- comparison


class LeafOps:
    """The mathematics behind a comparison; :class:`FastOps` here, SymPy in ``math_equiv``."""

    config: Any

    def leaf_eq(self, p: Leaf, g: Leaf) -> bool:
        raise Undecided

    def equations_eq(self, p: Equation, g: Equation) -> bool:
        raise Undecided

    def relations_eq(self, p: Rel, g: Rel) -> bool:
        raise Undecided

    def relation_set_eq(self, rel: Rel, other: Node, rel_is_pred: bool = False) -> bool:
        raise Undecided

    def sets_eq(self, p: Node, g: Node) -> bool:
        raise Undecided

    def leaf_matrix_eq(self, leaf: Leaf, other: Node) -> bool:
        raise Undecided


@dataclass
class FastOps(LeafOps):
    """Exact comparison of plain numbers without SymPy; anything else is :class:`Undecided`."""

    config: Any = None

    def leaf_eq(self, p: Leaf, g: Leaf) -> bool:
        if p == g or (p.text == g.text and p.degrees == g.degrees and not (p.percent ^ g.percent)):
            return True
        a, b = fast_number(p.text), fast_number(g.text)
        if a is None or b is None:
            raise Undecided
        return values_match(a, b, p, g, self.config)


def values_match(a: Any, b: Any, p: Leaf, g: Leaf, config: Any, close=numbers_close) -> bool:
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


def _unwrap(n: Node) -> Node:
    while isinstance(n, Seq) and len(n.items) == 1 and n.kind in ("list", "alts", "set", "pm"):
        n = n.items[0]
    return n


def _size(n: Node) -> int:
    n = _unwrap(n)
    if isinstance(n, Seq):
        return len(n.items)
    if isinstance(n, Assign):
        return _size(n.value)
    return 1


def is_hedge(p: Node, g: Node) -> bool:
    """A prediction that offers alternatives ("14 or 16") where the gold is one value."""
    p = _unwrap(p)
    if isinstance(p, Assign):
        p = _unwrap(p.value)
    if not (isinstance(p, Seq) and p.kind == "alts" and len(p.items) > 1):
        return False
    return _size(g) == 1


class Comparator:
    """Structural equivalence of two answers; the scalars go to ``ops``."""

    def __init__(self, ops: LeafOps, config: Any):
        self.ops = ops
        self.config = config

    def eq(self, p: Node, g: Node, depth: int = 0) -> bool:
        if depth > MAX_DEPTH:
            raise Unreadable("answer is nested too deeply")
        p, g = _unwrap(p), _unwrap(g)
        if p == g:
            return True
        d = depth + 1
        strict = getattr(self.config, "strict_variables", True)
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
            return self._text_eq(p, g)
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

    def _assign_as_equation(self, a: Assign, e: Equation) -> bool:
        value = _unwrap(a.value)
        if not isinstance(value, Leaf) or a.label_leaf is None:
            return False
        return self.ops.equations_eq(Equation(a.label_leaf, value), e)

    def _text_eq(self, p: Node, g: Node) -> bool:
        pt, gt = _text_of(p), _text_of(g)
        if pt is None or gt is None:
            return False
        if len(pt) > 1 or len(gt) > 1:
            return pt.lower() == gt.lower()
        return pt == gt

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
                return self._multiset_eq(ps, gs, d)
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
            if getattr(self.config, "strict_variables", True):
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
        if unordered and not getattr(self.config, "unordered_lists", True):
            unordered = pk in ("set", "pm") or gk in ("set", "pm")
        if not unordered:
            return len(p.items) == len(g.items) and all(
                self.eq(a, b, d) for a, b in zip(p.items, g.items, strict=True)
            )
        return self._multiset_eq(list(p.items), list(g.items), d)

    def _multiset_eq(self, ps: list[Node], gs: list[Node], d: int) -> bool:
        ps, gs = self._dedupe(ps, d), self._dedupe(gs, d)
        if len(ps) != len(gs):
            return False
        unmatched = list(range(len(ps)))
        for g in gs:
            for k in unmatched:
                if self.eq(ps[k], g, d):
                    unmatched.remove(k)
                    break
            else:
                return False
        return True

    def _dedupe(self, items: list[Node], d: int) -> list[Node]:
        out: list[Node] = []
        for it in items:
            if not any(it == o or self.eq(it, o, d) for o in out):
                out.append(it)
        return out

    def _set_eq(self, p: Node, g: Node, d: int) -> bool:
        if isinstance(p, Interval) and isinstance(g, Interval):
            return (p.lo_closed == g.lo_closed and p.hi_closed == g.hi_closed
                    and self.eq(p.lo, g.lo, d) and self.eq(p.hi, g.hi, d))
        if isinstance(g, Rel):
            return self.ops.relation_set_eq(g, p, False)
        if isinstance(p, Rel):
            if getattr(self.config, "relation_matches_set", False):
                return self.ops.relation_set_eq(p, g, True)
            return False
        if isinstance(p, SetUnion) and isinstance(g, SetUnion) and len(p.items) == len(g.items):
            try:
                if self._multiset_eq(list(p.items), list(g.items), d):
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


def _text_of(n: Node) -> str | None:
    if isinstance(n, Text):
        return n.value
    if isinstance(n, Leaf) and re.fullmatch(r"[A-Za-z][A-Za-z' ]*", n.text):
        return _text_key(n.text)
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


def compare(preds: list[Node], golds: list[Node], ops: LeafOps, config: Any) -> tuple[str, str]:
    """(reason, detail) for the prediction readings against the gold readings."""
    cmp = Comparator(ops, config)
    hedged = False
    undecided = False
    for p in preds:
        for g in golds:
            if is_hedge(p, g):
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
