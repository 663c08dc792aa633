"""Answer forms rewritten into plain ones before an answer is read (pure Python, no SymPy).

- :func:`flatten_braces`: redundant doubled braces ``{{x}}`` -> ``{x}``, iteratively and in
  linear time, so that thousands of nested braces around a number (``{{{...{7}...}}}``) read as
  the number instead of hitting a depth or length limit.
- :func:`repeating_decimals`: a repeating decimal written with a bar over the repetend
  (``0.\\overline{3}``, ``1.2\\overline{34}``, ``0.\\bar{3}``, ``0.\\dot{1}4285\\dot{7}``, ``0.3̅``)
  -> its exact fraction (``\\frac{1}{3}``, ``\\frac{611}{495}``...).
- :func:`real_line`: the set of all reals (``\\mathbb{R}``, ``\\mathbb R``, ``\\R``, ``ℝ``, "all
  real numbers") -> ``(-\\infty, \\infty)``; ``\\mathbb{R}^2``, ``\\mathbb{R}^+`` and the like are left alone.
- :func:`text_numbers`: ``\\text{}`` around a plain number (``\\text{ 12 }``) -> the number.
- :func:`collapse_root_chains`: a chain of many nested square roots (``\\sqrt{\\sqrt{...\\sqrt{x}}}``)
  -> one power ``(x)^{\\frac{1}{2^k}}`` (the same principal value), so that the LaTeX grammar,
  which recurses once per level, reads hundreds of levels; used by
  :mod:`~starloop.verifiers.math.sympy_values` just before parsing.
"""

from __future__ import annotations

import re
from fractions import Fraction

ROOT_CHAIN_MIN = 8
"""Chains of at least this many nested square roots are collapsed into one power."""


def brace_pairs(s: str) -> dict[int, int]:
    """Index of each unescaped ``{`` -> index of its matching ``}`` (one pass; unmatched omitted)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    escaped = False
    for i, c in enumerate(s):
        if not escaped and c == "{":
            stack.append(i)
        elif not escaped and c == "}" and stack:
            match[stack.pop()] = i
        escaped = c == "\\" and not escaped
    return match


def flatten_braces(s: str) -> str:
    """Drop the outer pair of every ``{{x}}`` (spaces allowed between the braces): ``{{{7}}}`` -> ``{7}``."""
    if "{{" not in s and "{ " not in s:
        return s
    match = brace_pairs(s)
    drop: set[int] = set()
    n = len(s)
    for i, j in match.items():
        k = i + 1
        while k < n and s[k] == " ":
            k += 1
        m = j - 1
        while m > i and s[m] == " ":
            m -= 1
        if k < j and match.get(k) == m and m > k:
            drop.update(range(i, k))
            drop.update(range(m + 1, j + 1))
    if not drop:
        return s
    return "".join(c for i, c in enumerate(s) if i not in drop)


# --------------------------------------------------------------------------- repeating decimals

_BAR = r"\\(?:overline|bar)\s*(?:\{\s*(?P<rep>\d+)\s*\}|(?P<rep1>\d))"
_REPEAT_BAR = re.compile(r"(?<![\d.])(?P<whole>\d*)\.(?P<fixed>\d*)\s*" + _BAR)
_REPEAT_DOTS = re.compile(
    r"(?<![\d.])(?P<whole>\d*)\.(?P<fixed>\d*?)\\dot\s*\{?\s*(?P<first>\d)\s*\}?"
    r"(?:(?P<mid>\d*)\\dot\s*\{?\s*(?P<last>\d)\s*\}?)?"
)
_REPEAT_COMBINING = re.compile(r"(?<![\d.])(?P<whole>\d*)\.(?P<fixed>\d*?)(?P<marked>(?:\d\u0305)+)")


def repeating_value(whole: str, fixed: str, repetend: str) -> Fraction:
    """``whole.fixed(repetend)(repetend)...`` exactly."""
    head = int(whole + fixed or "0")
    full = int(whole + fixed + repetend)
    return Fraction(full - head, 10 ** len(fixed) * (10 ** len(repetend) - 1))


def _as_latex(value: Fraction, before: str) -> str:
    out = str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    return "{" + out + "}" if before.rstrip().endswith(("^", "_")) else out


def repeating_decimals(s: str) -> str:
    """Repeating decimals with a marked repetend -> exact fractions (a wrong repetend stays wrong)."""
    if "\\overline" not in s and "\\bar" not in s and "\\dot" not in s and "\u0305" not in s:
        return s

    def bar(m: re.Match[str]) -> str:
        rep = m.group("rep") or m.group("rep1")
        if len(m.group("fixed")) + len(rep) > 200:
            return m.group(0)
        return _as_latex(repeating_value(m.group("whole"), m.group("fixed"), rep), s[: m.start()])

    def dots(m: re.Match[str]) -> str:
        rep = m.group("first") + ((m.group("mid") or "") + m.group("last") if m.group("last") else "")
        if len(m.group("fixed")) + len(rep) > 200:
            return m.group(0)
        return _as_latex(repeating_value(m.group("whole"), m.group("fixed"), rep), s[: m.start()])

    def combining(m: re.Match[str]) -> str:
        rep = m.group("marked").replace("\u0305", "")
        return _as_latex(repeating_value(m.group("whole"), m.group("fixed"), rep), s[: m.start()])

    s = _REPEAT_BAR.sub(bar, s)
    s = _REPEAT_DOTS.sub(dots, s)
    return _REPEAT_COMBINING.sub(combining, s)


# --------------------------------------------------------------------------- reals, numbers in \text

_REALS = re.compile(
    r"(?:\\mathbb\s*\{\s*R\s*\}|\\mathbb\s+R|\\Bbb\s*\{\s*R\s*\}|\\Bbb\s+R|\\R|ℝ)(?![A-Za-z])(?!\s*[\^_'])"
)
_ALL_REALS = re.compile(
    r"(?:\\text\{)?\s*(?:the\s+set\s+of\s+)?all\s+real\s+(?:numbers|values)\s*\}?|(?:\\text\{)?\s*all\s+reals\s*\}?",
    re.IGNORECASE,
)
_TEXT_NUMBER = re.compile(r"(?<![\d.])\\text\s*\{\s*([-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+))\s*\}(?![\d])")


def real_line(s: str) -> str:
    """The set of all reals, in any of its spellings, as the interval ``(-\\infty, \\infty)``."""
    if _ALL_REALS.fullmatch(s.strip()):
        return "(-\\infty, \\infty)"
    if "R" not in s and "ℝ" not in s:
        return s
    return _REALS.sub(lambda m: "(-\\infty, \\infty)", s)


def text_numbers(s: str) -> str:
    """``\\text{5}``, ``\\text{ 12 }``, ``\\text{3.5}``: a number wrapped in text is the number."""
    return _TEXT_NUMBER.sub(r"\1", s) if "\\text" in s else s


# --------------------------------------------------------------------------- nested roots

_SQRT_OPEN = re.compile(r"\\sqrt\s*\{")


def collapse_root_chains(s: str, min_depth: int = ROOT_CHAIN_MIN) -> str:
    """``\\sqrt{\\sqrt{...\\sqrt{x}...}}`` (``k >= min_depth`` levels, nothing else at any level)
    -> ``(x)^{\\frac{1}{2^k}}``: the principal value is the same, and it parses without recursion."""
    if s.count("\\sqrt") < min_depth:
        return s
    match = brace_pairs(s)
    out: list[str] = []
    pos = 0
    for m in _SQRT_OPEN.finditer(s):
        if m.start() < pos:
            continue  # inside a chain already collapsed
        depth, inner_start, inner_end, end = 0, 0, 0, 0
        at = m
        while at is not None:
            close = match.get(at.end() - 1)
            if close is None:
                break
            depth += 1
            inner_start, inner_end = at.end(), close
            if depth == 1:
                end = close + 1
            inner = s[inner_start:inner_end]
            lead = len(inner) - len(inner.lstrip())
            nxt = _SQRT_OPEN.match(s, inner_start + lead)
            if nxt is None or match.get(nxt.end() - 1) != inner_start + len(inner.rstrip()) - 1:
                break
            at = nxt
        if depth >= min_depth:
            out.append(s[pos : m.start()])
            out.append(f"({s[inner_start:inner_end]})^{{\\frac{{1}}{{{2 ** depth}}}}}")
            pos = end
    out.append(s[pos:])
    return "".join(out)
