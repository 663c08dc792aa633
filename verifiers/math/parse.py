"""Read an extracted answer text into a small structure (the nodes of :mod:`~starloop.verifiers.math.nodes`).

Pure Python, no SymPy: this runs in the calling process for every answer and again in the
worker processes. It decides what *kind* of answer a string is (number, list, tuple, set,
interval, inequality, equation, assignment ``x = 5``, matrix, ratio, text), with units,
currency, ``%`` and degree marks recognised and remembered on the leaf, digit grouping
resolved (:mod:`~starloop.verifiers.math.normalize`) and ``\\pm`` expanded. The mathematics
of each scalar is left to the comparison (:mod:`~starloop.verifiers.math.compare`).
"""

from __future__ import annotations

import re

from starloop.verifiers.math.forms import flatten_braces
from starloop.verifiers.math.nodes import (
    MAX_DEPTH,
    MAX_ITEMS,
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
from starloop.verifiers.math.normalize import (
    THOUSANDS,
    balanced,
    closes_at_end,
    join_thousands,
    normalize,
    split_top_level,
    strip_wrappers,
)

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
_FUNC_LABEL = re.compile(
    r"(?:[A-Za-z](?:_\{[^{}]*\}|_\w|\^\{\s*-\s*1\s*\}|\^-1|'+|\^\{?\s*\\prime\s*\}?|"
    r"\^\{\s*\\prime\s*\\prime\s*\}|\^\{\s*\(\s*\d+\s*\)\s*\})*"
    r"|\(\s*[A-Za-z]\s*(?:\\circ|°)\s*[A-Za-z]\s*\))"
    r"\s*\(\s*[A-Za-z](?:_\w)?(?:\s*,\s*[A-Za-z](?:_\w)?)*\s*\)"
)
"""A function being defined: ``f(x)``, ``f^{-1}(x)``, ``g'(t)``, ``f_2(x, y)``, ``(f \\circ g)(x)``."""
MAX_INPUT = 200_000
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "tanh", "mod", "gcd", "lcm", "max", "min", "det", "infty", "inf",
}


def is_label(s: str) -> bool:
    """A name that a value is assigned to: ``x``, ``f(x)``, ``f^{-1}(x)``, ``a_{37}``, ``|AB|``, ``(p,q)``, ``A:B``."""
    if _FUNC_LABEL.fullmatch(s.strip()):
        return True
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
    t = re.sub(r"\^\{-1\}|\^-1", "^{-1}", t)
    return re.sub(r"([A-Za-z}')])\([A-Za-z]\)", r"\1(.)", t)


def _has_letters(s: str) -> bool:
    t = re.sub(r"\\[A-Za-z]+", " ", s)
    return bool(re.search(r"[A-Za-z]", t)) or bool(
        re.search(r"\\(?!frac|sqrt|cdot|times|div|pi|infty|left|right|binom)[A-Za-z]+", s)
    )


def read_answer(s: str) -> list[Node]:
    """Structures for answer text ``s``: usually one; two for an ambiguous ``2,74``."""
    if len(s) > MAX_INPUT:
        raise Unreadable(f"answer longer than {MAX_INPUT} characters")
    s = flatten_braces(s)  # {{{...{7}...}}}: thousands of redundant braces are one
    if len(s) > 5000:
        raise Unreadable("answer longer than 5000 characters")
    t = normalize(s)
    t = strip_wrappers(t)
    if not t:
        raise Unreadable("empty answer")
    if not balanced(re.sub(r"\\[{}]", "", t)) and not _is_interval_text(t):
        raise Unreadable("unbalanced brackets")
    readings: list[Node] = []
    m = re.fullmatch(r"([-+]?\d+),(\d+)", t)
    if m and not THOUSANDS.fullmatch(t) and (
        len(m.group(2)) >= 2 or m.group(1).lstrip("+-") == "0" or len(m.group(1).lstrip("+-")) >= 4
    ):
        # "2,74": a decimal comma or a list of two numbers; either reading may match.
        readings.append(_parse_list(t, 0))
        readings.append(Leaf(f"{m.group(1)}.{m.group(2)}"))
        return readings
    return [_parse_list(join_thousands(t), 0)]


def _is_interval_text(t: str) -> bool:
    return bool(re.search(r"[(\[].*[)\]]", t))


def _parse_list(s: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise Unreadable("answer is nested too deeply")
    s = s.strip()
    pieces, seps = split_top_level(s, _LIST_SEP)
    if len(pieces) > MAX_ITEMS:
        raise Unreadable("too many items")
    if len(pieces) == 1:
        return _parse_item(s, depth + 1)
    # A trailing "and"/"or" with nothing after it ("19, 46, and 82" leaves an empty piece).
    kept = [(p, sep) for p, sep in zip(pieces, [None, *seps], strict=True) if p.strip()]
    if ";" in seps and "," in seps:
        groups, _ = split_top_level(s, re.compile(";"))
        return Seq("list", tuple(_parse_list(g, depth + 1) for g in groups if g.strip()))
    items = [_parse_item(p, depth + 1) for p, _ in kept]
    words = {sep.strip().lower() for sep in seps}
    kind = "alts" if "or" in words and "and" not in words else "list"
    return _combine(kind, items)


def _combine(kind: str, items: list[Node]) -> Node:
    """Group assignments: ``x = 1, 2`` and ``x = 1, x = 2`` are values of x; ``x = 1, y = 2`` names them."""
    if kind == "alts":
        union = _union_of_conditions(items)
        if union is not None:
            return union
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


def _union_of_conditions(items: list[Node]) -> Node | None:
    """``x < -2 or x > 3``, ``x \\in [0, 1] or x \\in [2, 3]``: one set (a logical "or"), not alternatives."""
    labels: set[str] = set()
    flat: list[Node] = []
    for it in items:
        if isinstance(it, Assign) and isinstance(it.value, (Interval, SetUnion)):
            labels.add(label_key(it.label))
            it = it.value
        elif not isinstance(it, Rel):
            return None
        flat.extend(it.items if isinstance(it, SetUnion) else (it,))
    if len(items) < 2 or len(labels) > 1:
        return None
    first = items[0]
    if labels and all(isinstance(it, Assign) for it in items) and isinstance(first, Assign):
        return Assign(first.label, SetUnion(tuple(flat)), first.label_leaf)
    return SetUnion(tuple(flat))


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
    s = strip_wrappers(s)
    if not s:
        raise Unreadable("empty item")
    text = _whole_text(s)
    if text is not None:
        return text
    pieces, seps = split_top_level(s, _REL_OP)
    if seps:
        return _parse_relation([p.strip() for p in pieces], [_OP_NAME.get(x, x) for x in seps], depth)
    pieces, seps = split_top_level(s, _CUP)
    if seps:
        return SetUnion(tuple(_parse_item(p, depth + 1) for p in pieces))
    matrix = _matrix_body(s)
    if matrix is None and s[0] in "([" and s[-1] in ")]" and closes_at_end(s, 0):
        matrix = _matrix_body(s[1:-1].strip())
    if matrix is not None:
        return _parse_matrix(matrix)
    pieces, seps = split_top_level(s, _RATIO)
    if seps and all(p.strip() for p in pieces):
        return Ratio(tuple(_leaf(p) for p in pieces))
    if s.startswith("\\{") and s.endswith("\\}") and closes_at_end(s, 1):
        inner = s[2:-2].strip()
        if not inner:
            return Seq("set", ())
        node = _parse_list(inner, depth + 1)
        items = node.items if isinstance(node, Seq) and node.kind in ("list", "alts") else (node,)
        return _seq("set", list(items))
    if s[0] in "([" and s[-1] in ")]" and closes_at_end(s, 0):
        inner = s[1:-1]
        parts, seps = split_top_level(inner, re.compile(","))
        if len(parts) == 1 and ";" in inner:
            parts, seps = split_top_level(inner, re.compile(";"))
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
        return Text(text_key(inner))
    m = re.fullmatch(r"\(([A-Za-z])\)", s)
    if m:
        return Text(m.group(1))
    if re.fullmatch(r"[A-Za-z][A-Za-z' ]*[A-Za-z]", s) and (" " in s or len(s) >= 3):
        words = s.lower().split()
        if not any(w in _MATH_WORDS for w in words):
            return Text(text_key(s))
    return None


def text_key(s: str) -> str:
    """Comparable spelling of a word answer: a lone letter (``(B)``) as itself, else lower case."""
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
        if len(ops) == 1 and is_label(parts[0]):
            value = _parse_list(parts[1], depth + 1)
            if isinstance(value, Seq) and value.kind == "tuple" and len(value.items) == 2 and all(
                isinstance(x, Leaf) for x in value.items
            ):
                value = Interval(value.items[0], value.items[1], False, False)  # x \in (a, b): an open interval
            if isinstance(value, (Interval, SetUnion)):  # x \in [a, b]: a set, of the values of x
                return Assign(parts[0], value, _leaf(parts[0]))
            return value
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
    t = strip_wrappers(s).strip()
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
        t = strip_wrappers(t)
        if t == before:
            break
    if not t:
        raise Unreadable("empty value")
    return Leaf(re.sub(r"\s+", " ", t), percent, degrees)


def _ends_in_math_word(t: str) -> bool:
    m = re.search(r"([A-Za-z]+)\s*$", t)
    return bool(m) and m.group(1).lower() in _MATH_WORDS


