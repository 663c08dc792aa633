"""Canonical spelling of an answer text, and bracket-aware scanning of it.

:func:`normalize` rewrites the many spellings of one answer into one (LaTeX variants,
spacing, unicode, digit grouping such as ``14{,}916`` and ``1\\,000``, and the answer forms of
:mod:`~starloop.verifiers.math.forms`: repeating decimals, the reals, numbers in
``\\text{}``); the helpers below split a text at top-level separators only (``()[]{}`` and
``\\begin``/``\\end`` nest), join digit groups (``7,425,000``) and remove wrappers around a
whole answer. Used by :mod:`starloop.verifiers.math.parse`; pure Python.
"""

from __future__ import annotations

import re

from starloop.verifiers.math.forms import real_line, repeating_decimals, text_numbers
from starloop.verifiers.math.nodes import MAX_DEPTH, Unreadable

_KNOWN_CMDS = (
    "frac|dfrac|tfrac|cfrac|sqrt|left|right|le|leq|ge|geq|lt|gt|ne|neq|pi|cdot|times|div|boxed|"
    "fbox|text|textbf|textit|textrm|mathrm|mathbf|mbox|infty|pm|mp|in|cup|cap|sin|cos|tan|cot|"
    "sec|csc|log|ln|exp|circ|approx|quad|qquad|dots|ldots|cdots|theta|alpha|beta|gamma|delta|"
    "lambda|mu|sigma|omega|phi|emptyset|varnothing|angle|binom|dbinom|operatorname|mathbb|"
    "langle|rangle|lfloor|rfloor|lceil|rceil|arcsin|arccos|arctan|overline|bar|lor|vee"
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
THOUSANDS = re.compile(r"(?<![\w.,])([-+]?[1-9]\d{0,2})((?:,\d{3})+)(\.\d+)?(?!\d|,\d)")
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
    s = text_numbers(s)  # \text{ 12 }: a number
    s = repeating_decimals(s)  # 0.\overline{3} -> \frac{1}{3}
    s = real_line(s)  # \mathbb{R} -> (-\infty, \infty)
    s = re.sub(r"\\(?:lor|vee)(?![A-Za-z])", " or ", s)
    s = _DEGREE.sub("°", s)
    s = s.replace(r"\%", "%")
    s = re.sub(r"\\(?:ldots|cdots|dots|dotsc|dotsb)(?![A-Za-z])", " ", s)
    s = re.sub(r"(?<![A-Za-z\\])(?:infinity|inf)(?![A-Za-z])", r"\\infty", s)
    s = re.sub(r"(?<![\d}])\.(?=\d)", "0.", s)  # .5 -> 0.5
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?:\s*[.;,:]\s*)+$", "", s)  # trailing punctuation
    s = re.sub(r"^\s*(?:=|:)\s*", "", s)
    return s


def bracket_depths(s: str) -> list[int]:
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


def split_top_level(s: str, pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """Split ``s`` at top-level matches of ``pattern``: (pieces, separators)."""
    matches = list(pattern.finditer(s))
    if not matches:  # the usual case: no bracket depths to compute
        return [s], []
    depth = bracket_depths(s)
    pieces, seps, pos = [], [], 0
    for m in matches:
        if m.start() < len(depth) and depth[m.start()] == 0 and m.end() > m.start():
            pieces.append(s[pos : m.start()])
            seps.append(m.group(0))
            pos = m.end()
    pieces.append(s[pos:])
    return pieces, seps


def join_thousands(s: str) -> str:
    """Drop digit-group commas / spaces at the top level (``7,425,000`` -> ``7425000``)."""
    if not (THOUSANDS.search(s) or _SPACE_THOUSANDS.search(s)):
        return s
    depth = bracket_depths(s)

    def repl(m: re.Match[str]) -> str:
        if depth[m.start()] != 0:
            return m.group(0)
        return m.group(1) + m.group(2).replace(",", "").replace(" ", "") + (m.group(3) or "")

    s = THOUSANDS.sub(repl, s)
    depth = bracket_depths(s)
    return _SPACE_THOUSANDS.sub(repl, s)


def strip_wrappers(s: str) -> str:
    """Remove a whole-string ``\\boxed{}`` / ``{}`` / matching ``$``."""
    for _ in range(MAX_DEPTH):
        t = s.strip()
        m = re.match(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", t, re.DOTALL)
        if m and balanced(m.group(1)):
            s = m.group(1)
            continue
        if t.startswith("{") and t.endswith("}") and balanced(t[1:-1]) and closes_at_end(t, 0):
            s = t[1:-1]
            continue
        return t
    raise Unreadable("answer is nested too deeply")


def balanced(s: str) -> bool:
    d = 0
    for c in s:
        if c in "([{":
            d += 1
        elif c in ")]}":
            d -= 1
            if d < 0:
                return False
    return d == 0


def closes_at_end(s: str, start: int) -> bool:
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

