"""Whether a completion commits to its final answer (for :mod:`starloop.verifiers.math.extract`).

A final answer only counts when the completion stands by it. Pure Python, linear in the text:

- :func:`hedge_words`: the words between two candidate answers offer an alternative
  ("5 or 7", "12, but maybe 15", "5, or possibly 7"), and :data:`TAIL_HEDGE`: a candidate
  offered right after the answer ("The answer is 5. Or maybe 7."): the candidates are read
  together as alternatives, which are a hedge when the gold is one value (unless they are
  the same value written twice: "1/2, or 50%").
- :func:`uncommitted`: why the completion does not stand by the answer found at
  ``[start, end)``, or None. It does not when

  * it reconsiders after the answer and never comes back to a conclusion ("\\boxed{5}. Wait,
    let me reconsider..." at the end, without "yes", "correct", "so the answer is"...);
  * the answer is stated tentatively and not boxed ("the answer might be 5", "perhaps 12");
  * it is caught in a repetition loop (the same reconsidering sentence at least
    ``LOOP_REPEATS`` times) and its answer is not boxed.

Reference solutions (the gold) are trusted and not checked.
"""

from __future__ import annotations

import re
from collections import Counter

LOOP_REPEATS = 3

HEDGE_MARKERS = {"or", "maybe", "perhaps", "possibly", "alternatively"}
_HEDGE_FILLER = {
    "but", "it", "its", "s", "is", "could", "might", "may", "also", "be", "either", "the", "answer",
    "actually", "else", "probably", "i", "think", "guess", "then", "just", "even", "value", "result",
}
_RECONSIDER = re.compile(
    r"\b(?:wait|hold on|hmm+|on second thought|no,? wait|actually,? no|"
    r"let me (?:re(?:consider|think|check|do|evaluate|calculate|compute|examine|visit|read)\w*|"
    r"double[- ]check|check (?:again|that|this)|think (?:again|more)|try again)|"
    r"that(?:'s| is) (?:not (?:right|correct)|wrong|incorrect)|that can'?t be (?:right|correct)|"
    r"i made (?:a|an) (?:mistake|error))\b",
    re.IGNORECASE,
)
_CONFIRM = re.compile(
    r"\b(?:yes|yep|correct(?:ly)?|confirm(?:s|ed)?|verified|checks out|consistent|indeed|"
    r"(?:seems|looks|is|'s|sounds) (?:right|good|fine)|so the (?:final )?answer|therefore|thus|hence|"
    r"i'?m (?:confident|sure))\b",
    re.IGNORECASE,
)
_NOT_CONFIRM = re.compile(r"(?:\bnot\s+|n't\s+|\bin)correct\b", re.IGNORECASE)
_TENTATIVE = re.compile(
    r"\b(?:answer|result|it|value|solution|total)\s+(?:might|could|may)\s+(?:also\s+|well\s+)?be\b|"
    r"\b(?:is|be|it'?s|are)\s+(?:maybe|perhaps|possibly)\b|^\W*(?:maybe|perhaps|possibly)\b|\bnot sure\b|\bi guess\b",
    re.IGNORECASE,
)
"""The answer stated as a possibility: "the answer might be 5", "it could be 12", "perhaps it is 5"."""
TAIL_HEDGE = re.compile(
    r"[\s.,;:!)\]$*]*\(?\s*(?:or(?!\s+(?:equivalently|simply|in other words|i\.e))|(?:but\s+)?(?:maybe|perhaps|possibly)|"
    r"but\s+it\s+(?:could|might|may)(?:\s+also)?\s+be|alternatively)\b",
    re.IGNORECASE,
)
"""Another candidate offered right after the answer: ". Or maybe 7", ", but perhaps 7"."""
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def hedge_words(words: list[str]) -> bool:
    """Whether the words between two candidate answers offer an alternative ("but maybe", "or")."""
    lowered = [w.lower() for w in words]
    return (
        0 < len(lowered) <= 8
        and bool(HEDGE_MARKERS & set(lowered))
        and set(lowered) <= HEDGE_MARKERS | _HEDGE_FILLER
    )


def uncommitted(text: str, start: int, end: int, boxed: bool) -> str | None:
    """Why the completion ``text`` does not stand by its answer at ``[start, end)``; None if it does."""
    tail = text[end:]
    reconsidered = list(_RECONSIDER.finditer(tail))
    if reconsidered:
        after = _NOT_CONFIRM.sub(" ", tail[reconsidered[-1].end() :])
        if not _CONFIRM.search(after):
            return "the completion reconsiders its last answer and never commits to one"
    if not boxed and _TENTATIVE.search(text[start:end].strip()):
        return "tentative answer: stated as a possibility, not a conclusion"
    if not boxed and _loop(text):
        return "repetition loop: the completion keeps reconsidering without a boxed conclusion"
    return None


def _loop(text: str) -> bool:
    """The same reconsidering sentence (not a bare "Wait." or "Hmm.") at least ``LOOP_REPEATS`` times."""
    if len(_RECONSIDER.findall(text)) < LOOP_REPEATS:
        return False
    counts = Counter(
        key
        for m in _SENTENCE.finditer(text)
        if _RECONSIDER.search(m.group(0)) and len(key := re.sub(r"\W+", " ", m.group(0)).strip().lower()) >= 12
    )
    return bool(counts) and max(counts.values()) >= LOOP_REPEATS
