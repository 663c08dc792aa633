"""Find the final answer in a whole chain-of-thought completion.

Pure Python and linear in the length of the text (no regex with nested quantifiers, one
pass for brace matching), so it runs in the calling process without a time limit, even on
100k-character completions.

Where the answer is read from, the latest in the text wins:

1. ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces; an unclosed box runs to the end of the
   text). Boxes separated only by punctuation, spacing or a short connector
   ("and", "or", ``\\text{ and }``) are read together as one list: ``\\boxed{1}, \\boxed{2}``.
2. An answer phrase: ``#### x``, "the answer is x", "final answer: x", ``**Answer:** x``.
   A phrase whose content has no number or math is ignored when a box precedes it
   ("\\boxed{3}. Note that the answer is unique.").
3. Otherwise a bare final answer: the whole text when it is a short mathematical answer,
   else the last math span (``$x$``, ``\\(x\\)``, ``\\[x\\]``) or number of the last sentence
   that has one, taking what follows "is" when the sentence has it.

Candidates joined by hedging words ("either 5 or 7", "12, but maybe 15") or offered right
after the answer ("The answer is 5. Or maybe 7.") are read together as alternatives. A
completion that does not stand by its answer (it reconsiders after it and never concludes,
states it only as a possibility, or is caught in a repetition loop) has none: see
:mod:`starloop.verifiers.math.commitment`. A reference solution (``trusted``) is not checked.

Inline math (``$...$``, ``\\(...\\)``) does not span lines; display math (``$$``, ``\\[``) does.
The scanning of math spans, boxes and sentences is in :mod:`starloop.verifiers.math.spans`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starloop.verifiers.math.commitment import TAIL_HEDGE, hedge_words, uncommitted
from starloop.verifiers.math.forms import flatten_braces
from starloop.verifiers.math.spans import (
    Span,
    combined_boxes,
    find_boxes,
    gap_connector,
    inside_checker,
    math_spans,
    sentence_end,
    split_sentences,
    text_outside,
)

# Chat-template markers: the turn ends at the first of them.
_END_OF_TURN = re.compile(r"<\|(?:im_end|im_start|endoftext|eot_id|end_of_text|end)\|>|</s>")
_BOILERPLATE = re.compile(r"I hope (?:it|this) is correct\.?", re.IGNORECASE)
_ANCHOR = re.compile(
    r"(?:\*\*|__)?\b(?P<kind>final\s+answer|answer)\b(?:\*\*|__)?[ \t]*"
    r"(?P<sep>(?:to\s+(?:the|this)\s+(?:question|problem)\s+)?"
    r"(?:is|was|would\s+be|will\s+be|should\s+be|becomes)\b|[:=])?"
    r"(?:\*\*|__)?",
    re.IGNORECASE,
)
_HASHES = re.compile(r"(?<!#)####(?!#)[ \t]*")  # exactly four: "###### 29" is no marker (nor "## 29")
_PROSE_WORD = re.compile(r"(?<![\w\\])[A-Za-z]{3,}(?!\w)")
_WORD = re.compile(r"[A-Za-z]+")
_NOT_PROSE = {
    "and", "or", "pct", "percent", "percentage", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc",
    "log", "exp", "infty", "infinity", "inf", "mod", "gcd", "lcm", "max", "min", "deg", "degrees",
    "degree", "units", "unit", "dollars", "cents", "cm", "mm", "km", "inches", "feet", "meters",
    "miles", "hours", "minutes", "seconds", "days", "yuan", "euros",
}
_NUMBER = re.compile(
    r"(?<![\w.])[-+−]?\d+ \d+/\d+(?![\w.])|"  # mixed number: 2 3/4
    r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?(?:\s*/\s*\d+)?(?:\s*(?:\\?%|percent\b))?"
    r"|(?<![\w.])[-+]?\.\d+"
)
_IS = re.compile(r"\b(?:is|are|equals|=)\b|=", re.IGNORECASE)
MAX_ANSWER_CHARS = 5000


@dataclass(frozen=True)
class Extraction:
    """What :func:`find_answer` read: the answer text (or None) and where it came from."""

    answer: str | None
    source: str  # "boxed", "phrase", "bare", "last-math" or "none"
    unclosed: bool = False
    detail: str = ""
    withdrawn: bool = False  # an answer was found, but the completion does not stand by it



def _strip_math(segment: str) -> str:
    """Remove math delimiters and quoting around an answer segment."""
    s = segment.strip()
    s = s.replace('\\"', "").replace("``", "").replace("''", "")
    s = re.sub(r"(?<!\\)\$\$?|\\\(|\\\)|\\\[|\\\]", " ", s)
    s = s.strip().strip("\"'*").strip()
    s = re.sub(r"[.,;:]+$", "", s).strip()
    return s


def _has_math(segment: str) -> bool:
    return bool(re.search(r"\d|\\[A-Za-z]|\$", segment))


def _after_is(segment: str) -> tuple[str, bool]:
    """The part of a sentence after its last "is"/"=" outside math (the stated value)."""
    inside = inside_checker(math_spans(segment))
    cut = 0
    for m in _IS.finditer(segment):
        if not inside(m.start()):
            cut = m.end()
    rest = segment[cut:]
    return (rest, True) if cut and rest.strip() else (segment, False)


def _answer_from_sentence(segment: str, split_is: bool = True) -> tuple[str | None, str]:
    """Read the answer out of an answer sentence: its math, or its number, or its words."""
    seg, after_is = _after_is(segment) if split_is else (segment, True)
    if after_is and not _has_math(seg) and _has_math(segment):
        seg, after_is = segment, False  # "$x \\ge 5$ is the solution."
    seg = seg.strip()
    if not seg:
        return None, "none"
    spans = math_spans(seg)
    outside = _COMMAND_ARG.sub(" ", text_outside(seg, spans))
    prose = [w for w in _PROSE_WORD.findall(outside) if w.lower() not in _NOT_PROSE]
    if not prose:
        return _strip_math(seg) or None, "phrase"
    if spans:
        # The math that follows directly, joined with further math by connectors.
        first = spans[0]
        out = seg[first.inner_start : first.inner_end]
        for prev, nxt in zip(spans, spans[1:], strict=False):
            gap = seg[prev.end : nxt.start]
            joiner = gap_connector(gap, strict=True)
            if joiner is None:
                break
            out += joiner + seg[nxt.inner_start : nxt.inner_end]
        tail = seg[spans[-1].end :]
        pct = re.match(r"\s*(\\?%|percent\b|pct\b)", tail)
        return _strip_math(out) + ("\\%" if pct else ""), "phrase"
    nums = list(_NUMBER.finditer(seg))
    if nums:
        # "is 19 because ..." states the value first; "it's not 10, it's 12" last.
        k = 0 if after_is else len(nums) - 1
        lo, hi = k, k  # "either 5 or 7", "12, but maybe 15": alternatives
        while lo > 0 and hedge_words(_WORD.findall(seg[nums[lo - 1].end() : nums[lo].start()])):
            lo -= 1
        while hi + 1 < len(nums) and hedge_words(_WORD.findall(seg[nums[hi].end() : nums[hi + 1].start()])):
            hi += 1
        return " or ".join(n.group(0).strip() for n in nums[lo : hi + 1]), "phrase"
    words = seg.strip().rstrip(".")
    if len(words.split()) <= 4:
        return _strip_math(words) or None, "phrase"
    return None, "none"



def _clean(text: str) -> str:
    m = _END_OF_TURN.search(text)
    if m:
        text = text[: m.start()]
    return _BOILERPLATE.sub(" ", text)


MAX_PHRASES = 40


def _phrase_candidates(text: str, spans: list[Span], span_at: dict[int, Span]) -> list[tuple[int, str, int]]:
    """(position, answer text, end of its sentence) for the answer phrases, in order ("" when one
    has no content).

    Only the last ``MAX_PHRASES`` phrases are read: the latest one with content wins.
    """
    found: list[tuple[int, str, int]] = []
    for m in _HASHES.finditer(text):
        eol = text.find("\n", m.end())
        eol = eol if eol >= 0 else len(text)
        found.append((m.start(), _strip_math(text[m.end() : eol]), eol))
    inside = inside_checker(spans)
    anchors = [m for m in _ANCHOR.finditer(text) if not inside(m.start())]
    for m in anchors[-MAX_PHRASES:]:
        start = m.end()
        while start < len(text) and text[start] in " \t:*\"'":
            start += 1
        if text.startswith('\\"', start):
            start += 2
        bold_heading = m.group("kind").lower() == "final answer" and m.group(0).rstrip().endswith(("**", "__"))
        if start < len(text) and text[start] == "\n" and (m.group("sep") or bold_heading):
            start += 1  # "**Final Answer**\n$x$" puts the answer on the next line
        if not m.group("sep") and not bold_heading and not (
            start < len(text) and (text[start] in "$\\(-+[{" or text[start].isdigit())
        ):
            continue  # "answer" as an ordinary word ("is our answer.", "to answer this")
        end = sentence_end(text, start, span_at)
        # "Final Answer: The volume is 120." states the value after "is"; "the answer is x" already did.
        heading = m.group("sep") in (None, ":") and m.group("kind").lower() == "final answer"
        answer, _ = _answer_from_sentence(text[start:end], split_is=heading or m.group("sep") == ":")
        found.append((m.start(), answer or "", end))
    found.sort(key=lambda x: x[0])
    return found


_COMMAND_ARG = re.compile(r"\\[A-Za-z]+\s*\{[^{}]*\}")


def _is_bare_answer(text: str, spans: list[Span]) -> bool:
    if len(text) > 400 or "\n\n" in text.strip():
        return False
    outside = _COMMAND_ARG.sub(" ", text_outside(text, spans))
    prose = [w for w in _PROSE_WORD.findall(outside) if w.lower() not in _NOT_PROSE]
    return not prose


def _fallback(text: str, spans: list[Span], span_at: dict[int, Span]) -> tuple[Extraction, int, int]:
    stripped = text.strip()
    if not stripped:
        return Extraction(None, "none", detail="empty completion"), 0, len(text)
    if _is_bare_answer(stripped, spans):
        return Extraction(_strip_math(stripped) or None, "bare"), 0, len(text)
    # The last sentence that carries math or a number.
    sentences = split_sentences(text, span_at)
    for start, end in reversed(sentences):
        sentence = text[start:end]
        if not _has_math(sentence):
            continue
        answer, _ = _answer_from_sentence(sentence)
        if answer is None:
            local = math_spans(sentence)
            nums = list(_NUMBER.finditer(text_outside(sentence, local)))
            if local:
                answer = _strip_math(sentence[local[-1].inner_start : local[-1].inner_end])
            elif nums:
                answer = nums[-1].group(0)
        if answer:
            return Extraction(answer, "last-math"), start, end
    words = stripped.rstrip(".")
    if len(words.split()) <= 3 and len(words) <= 60:
        return Extraction(words, "bare"), 0, len(text)
    return Extraction(None, "none", detail="no final answer found"), 0, len(text)


def _sentence_start(text: str, pos: int) -> int:
    return max(text.rfind(c, 0, pos) for c in ".!?\n") + 1


def _locate(text: str, spans: list[Span], span_at: dict[int, Span]) -> tuple[Extraction, int, int]:
    """The final answer of (cleaned) ``text``, with the start and end of the sentence or box it is in."""
    boxes = find_boxes(text)
    phrases = _phrase_candidates(text, spans, span_at)
    box_pos = boxes[-1].start if boxes else -1
    # The latest phrase with content wins over an earlier box; a content-free phrase only
    # counts when there is no box at all.
    for pos, answer, end in reversed(phrases):
        if pos <= box_pos:
            break
        if answer and (_has_math(answer) or not boxes):
            return Extraction(answer, "phrase"), _sentence_start(text, pos), end
    if boxes:
        answer, unclosed = combined_boxes(text, boxes)
        answer = _strip_math(answer) if "$" in answer else answer.strip()
        if not answer:
            return Extraction("", "boxed", unclosed, detail="empty \\boxed{}"), box_pos, boxes[-1].end
        return Extraction(answer, "boxed", unclosed), box_pos, boxes[-1].end
    for pos, answer, end in reversed(phrases):
        if answer:
            return Extraction(answer, "phrase"), _sentence_start(text, pos), end
    if phrases:
        return Extraction(None, "phrase", detail="answer phrase without a readable answer"), 0, len(text)
    return _fallback(text, spans, span_at)


def _with_tail_hedge(text: str, ex: Extraction, end: int, span_at: dict[int, Span]) -> tuple[Extraction, int]:
    """"The answer is 5. Or maybe 7.": the candidate offered after the answer joins it as an alternative."""
    m = TAIL_HEDGE.match(text, end)
    if m is None or ex.answer is None:
        return ex, end
    stop = sentence_end(text, m.end(), span_at)
    candidate, _ = _answer_from_sentence(text[m.end() : stop])
    if not candidate or not _has_math(candidate):
        return ex, end
    return Extraction(f"{ex.answer} or {candidate}", ex.source, ex.unclosed, ex.detail), stop


def find_answer(text: str, trusted: bool = False) -> Extraction:
    """Locate the final answer in ``text``: a completion, or (``trusted``) a reference solution.

    A completion's answer is withdrawn (``answer`` None, ``withdrawn``) when the completion does
    not stand by it (:func:`~starloop.verifiers.math.commitment.uncommitted`); a reference
    solution is trusted.
    """
    think_end = text.rfind("</think>")
    if think_end >= 0:
        tail = find_answer(text[think_end + len("</think>") :], trusted)
        if tail.answer is not None or tail.unclosed or tail.withdrawn:
            return tail
    text = _clean(text)
    spans = math_spans(text)
    span_at = {s.start: s for s in spans}
    ex, start, end = _locate(text, spans, span_at)
    if ex.answer and not trusted:
        ex, end = _with_tail_hedge(text, ex, end, span_at)
        why = uncommitted(text, start, end, ex.source == "boxed")
        if why:
            return Extraction(None, ex.source, ex.unclosed, detail=why, withdrawn=True)
    return _bounded(ex)


def _bounded(ex: Extraction) -> Extraction:
    if ex.answer is not None and len(ex.answer) > MAX_ANSWER_CHARS:
        flat = flatten_braces(ex.answer)  # {{{...{7}...}}}: redundant braces do not count
        if len(flat) <= MAX_ANSWER_CHARS:
            return Extraction(flat, ex.source, ex.unclosed, ex.detail)
        return Extraction(None, ex.source, ex.unclosed, detail=f"answer longer than {MAX_ANSWER_CHARS} characters")
    return ex


def extract_answer(text: str) -> str | None:
    """The final answer of a completion as text, or None when there is none (or it is empty)."""
    ex = find_answer(text)
    return ex.answer or None
