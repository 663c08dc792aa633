"""Scanning a completion's text for the answer extractor (:mod:`starloop.verifiers.math.extract`).

Math spans (``$x$``, ``$$x$$``, ``\\(x\\)``, ``\\[x\\]``), ``\\boxed{}`` / ``\\fbox{}`` boxes and
their joining into one list, and sentence boundaries that treat math spans as atomic. Pure
Python and linear in the length of the text (no regex with nested quantifiers, one pass for
brace matching). Inline math (``$...$``, ``\\(...\\)``) does not span lines; display math
(``$$``, ``\\[``) does.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from starloop.verifiers.math.commitment import hedge_words

_BOX = re.compile(r"\\+(?:boxed|fbox)\b\s*")
_CONNECTOR_WORDS = {"and", "or"}


@dataclass(frozen=True)
class Span:
    """One math span: its delimiters included (``start``/``end``) and excluded (``inner_*``)."""

    start: int  # start of the delimiter
    end: int  # one past the closing delimiter
    inner_start: int
    inner_end: int
    display: bool


def _occurrences(text: str, token: str) -> list[int]:
    out, i = [], text.find(token)
    while i >= 0:
        out.append(i)
        i = text.find(token, i + len(token))
    return out


def _next_after(positions: list[int], pos: int) -> int:
    k = bisect.bisect_left(positions, pos)
    return positions[k] if k < len(positions) else -1


def math_spans(text: str) -> list[Span]:
    """Math spans of ``text`` in order; unmatched delimiters are left as text (linear time)."""
    spans: list[Span] = []
    closes = {"(": _occurrences(text, "\\)"), "[": _occurrences(text, "\\]")}
    doubles = _occurrences(text, "$$")
    newlines = _occurrences(text, "\n")
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in "([":
                j = _next_after(closes[nxt], i + 2)
                if nxt == "(" and j >= 0 and 0 <= _next_after(newlines, i + 2) < j:
                    j = -1  # inline math does not span lines
                if j >= 0:
                    spans.append(Span(i, j + 2, i + 2, j, nxt == "["))
                    i = j + 2
                    continue
            i += 2
            continue
        if c == "$":
            if text.startswith("$$", i):
                j = _next_after(doubles, i + 2)
                if j >= 0:
                    spans.append(Span(i, j + 2, i + 2, j, True))
                    i = j + 2
                    continue
                i += 2
                continue
            eol = text.find("\n", i + 1)
            eol = n if eol < 0 else eol
            j = i + 1
            while True:
                j = text.find("$", j, eol)
                if j < 0 or text[j - 1] != "\\":
                    break
                j += 1
            if j >= 0 and j > i + 1:
                spans.append(Span(i, j + 1, i + 1, j, False))
                i = j + 1
                continue
        i += 1
    return spans


def _brace_map(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its matching ``}`` (one pass; unmatched omitted)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    prev_backslash = False
    for i, c in enumerate(text):
        if c == "{" and not prev_backslash:
            stack.append(i)
        elif c == "}" and not prev_backslash and stack:
            match[stack.pop()] = i
        prev_backslash = c == "\\" and not prev_backslash
    return match


@dataclass(frozen=True)
class Box:
    """One ``\\boxed{}`` / ``\\fbox{}``: where it is and what it holds."""

    start: int
    end: int  # one past the closing brace (or len(text) when unclosed)
    content: str
    unclosed: bool


def find_boxes(text: str) -> list[Box]:
    """The outermost boxes of ``text`` in order; an unclosed box runs to the end of the text."""
    found = list(_BOX.finditer(text))
    if not found:
        return []
    braces = _brace_map(text)
    boxes: list[Box] = []
    for m in found:
        j = m.end()
        if j < len(text) and text[j] == "{":
            close = braces.get(j)
            if close is None:
                boxes.append(Box(m.start(), len(text), text[j + 1 :], True))
            else:
                boxes.append(Box(m.start(), close + 1, text[j + 1 : close], False))
        elif j < len(text) and m.group(0) != m.group(0).rstrip():  # "\boxed 5"
            tok = re.match(r"[^\s$.,;]+", text[j:])
            if tok:
                boxes.append(Box(m.start(), j + tok.end(), tok.group(0), False))
    # Drop boxes nested inside another box: the outer one is the answer.
    outer: list[Box] = []
    for b in boxes:
        if outer and b.start < outer[-1].end:
            continue
        outer.append(b)
    return outer


_GAP_STRIP = re.compile(
    r"\\text\{([^{}]*)\}|\\(?:q?quad|,|;|:|!| )|\\[\[\]()]|\$|\\\\|&|[\s.,;:!+\-*~]|\\n"
)


def gap_connector(gap: str, strict: bool = False) -> str | None:
    """How two consecutive answers are joined: ", " / " or ", or None when they are separate.

    Boxes may be separated by a few words around a connector ("\\boxed{1} papers and
    \\boxed{2} bins"); inline math only by connectors (``strict``): "$1$, $2$ and $3$". Words
    that hedge ("but maybe", "or possibly") join both as alternatives.
    """
    if len(gap) > 120:
        return None
    words = re.findall(r"[A-Za-z]+", _GAP_STRIP.sub(lambda m: f" {m.group(1) or ''} ", gap))
    lowered = [w.lower() for w in words]
    if not words:
        return ", "
    if hedge_words(words):  # "12, but maybe 15": alternatives
        return " or "
    if strict and not set(lowered) <= _CONNECTOR_WORDS:
        return None
    if len(words) <= 6 and _CONNECTOR_WORDS & set(lowered):
        return " or " if "or" in lowered and "and" not in lowered else ", "
    return None


def combined_boxes(text: str, boxes: list[Box]) -> tuple[str, bool]:
    """The last box, joined with the boxes just before it when only a connector separates them."""
    last = boxes[-1]
    parts = [last.content.strip()]
    joiners: list[str] = []
    k = len(boxes) - 1
    while k > 0:
        joiner = gap_connector(text[boxes[k - 1].end : boxes[k].start])
        if joiner is None:
            break
        prev = boxes[k - 1].content.strip()
        if prev != parts[0]:
            parts.insert(0, prev)
            joiners.insert(0, joiner)
        k -= 1
    out = parts[0]
    for joiner, part in zip(joiners, parts[1:], strict=True):
        out += joiner + part
    return out, last.unclosed


def sentence_end(text: str, start: int, span_at: dict[int, Span], limit: int = 600) -> int:
    """End of the sentence or line that begins at ``start`` (math spans are atomic)."""
    stop = min(len(text), start + limit)
    i = start
    while i < stop:
        s = span_at.get(i)
        if s is not None:
            if s.display and text[s.inner_start : s.inner_end].rstrip().endswith("."):
                return s.end  # "$$ ... .$$ Therefore" closes the sentence inside the math
            i = s.end
            continue
        c = text[i]
        if c == "\n":
            return i
        if c in ".!?" and (i + 1 >= len(text) or text[i + 1] in " \t\n\"'"):
            return i
        i += 1
    return stop


def split_sentences(text: str, span_at: dict[int, Span]) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of ``text``, in order (see :func:`sentence_end`)."""
    out: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    while start < n:
        end = sentence_end(text, start, span_at, limit=n)
        if end <= start:
            end = start + 1
        out.append((start, end))
        start = end + 1
    return out


def text_outside(text: str, spans: list[Span]) -> str:
    """``text`` with each of ``spans`` replaced by one space."""
    out, pos = [], 0
    for s in spans:
        out.append(text[pos : s.start])
        out.append(" ")
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def inside_checker(spans: list[Span]) -> Callable[[int], bool]:
    """A test of whether a position of the text lies strictly inside one of ``spans``."""
    starts = [s.start for s in spans]

    def inside(pos: int) -> bool:
        k = bisect.bisect_right(starts, pos) - 1
        return k >= 0 and spans[k].start < pos < spans[k].end

    return inside
