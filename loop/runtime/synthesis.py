"""Self-Instruct problem synthesis: the proposal prompt, and the filters a proposed problem must pass.

The model (or a teacher) is shown ``k`` problems of the pool and writes one more. A proposal joins the
pool only if it passes, in order:

1. ``parse``: a problem can be read from it (``arithmetic``: a ``+``/``-`` chain on its first line;
   ``text``: its first paragraph, a ``Problem:`` / ``Q:`` label removed);
2. ``length``: between ``min_tokens`` and ``max_tokens`` tokens;
3. ``novelty``: its ROUGE-L F1 against every problem of the pool (and every proposal accepted before it)
   stays below ``novelty_threshold``, as Self-Instruct filters at 0.7. ROUGE-L is ``rouge-score``'s, over
   a tokenization that keeps symbols: its default drops them, so ``3+4-2`` and ``3-4+2`` would be one text;
4. ``decontamination``: it shares no ``decontam_n``-gram of tokens with a held-out problem (GPT-3 and
   open-instruct use 13 words for prose; a problem shorter than ``n`` tokens is compared whole);
5. ``judge`` (in the stage, with ``synthesize.judge`` set): an LLM judge (the ``judge`` verifier) grades the
   proposal as a response to its proposal prompt; a proposal it does not pass (or could not grade) is out;
6. ``difficulty`` (in the stage): the pass rate estimated from its labeling samples lies strictly inside
   the band ``(min_pass_rate, max_pass_rate)``: a problem every sample solves, or none, teaches nothing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from starloop.loop.runtime.text import ngrams

FILTERS = ("parse", "length", "novelty", "decontamination", "judge", "difficulty")
_CHAIN = re.compile(r"^\s*(\d+(?:\s*[+-]\s*\d+)+)\s*$")
_LABEL = re.compile(r"^\s*(?:problem|question|q)\s*\d*\s*[:.]\s*", re.IGNORECASE)
_SYMBOLS = re.compile(r"\d|[^\W\d_]+|[^\w\s]|_")


def tokens(text: str) -> list[str]:
    """Words, and every digit and symbol on its own (``3+4-2`` -> ``3 + 4 - 2``): order and operators count."""
    return _SYMBOLS.findall(text.lower())


class _Tokenizer:
    """``rouge-score``'s tokenizer interface over :func:`tokens`."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


def parse_problem(kind: str, text: str) -> str | None:
    """The problem a proposal states, or None (``kind``: ``arithmetic`` or ``text``)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    if kind == "arithmetic":
        m = _CHAIN.match(_LABEL.sub("", lines[0]))
        return re.sub(r"\s+", "", m.group(1)) if m else None
    para = text.strip().split("\n\n")[0]
    para = _LABEL.sub("", para).strip()
    return para or None


def proposal_prompt(template: str, example: str, shown: Sequence[str]) -> str:
    """``template`` with ``{examples}``: each of ``shown`` rendered by ``example`` (``{prompt}``), in order."""
    return template.format(examples="".join(example.format(prompt=p) for p in shown))


def pick_examples(pool: Sequence[str], k: int, rng: random.Random) -> list[str]:
    return rng.sample(list(pool), min(k, len(pool)))


@dataclass
class Screen:
    """The filters 1-4 over a stream of proposals, with the pool and the held-out set they are checked against."""

    pool: list[str]
    held_out: Sequence[str]
    kind: str = "text"
    min_tokens: int = 1
    max_tokens: int = 512
    novelty_threshold: float = 0.7
    decontam_n: int = 13
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from rouge_score import rouge_scorer  # heavy (nltk): deferred until a run synthesizes

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())
        self.counts = {f: 0 for f in FILTERS}
        self.grams: set[tuple[str, ...]] = set()
        for text in self.held_out:
            self.grams |= grams(text, self.decontam_n)
        self.seen = set(self.pool)

    def novelty(self, text: str) -> float:
        """The highest ROUGE-L F1 of ``text`` against the pool (1.0 for a text already in it)."""
        if text in self.seen:
            return 1.0
        return max((self.scorer.score(p, text)["rougeL"].fmeasure for p in self.pool), default=0.0)

    def check(self, proposal: str) -> tuple[str | None, str | None, float | None]:
        """(problem text, None, its novelty) if ``proposal`` passes filters 1-4, else (text or None, the filter
        that rejected it, novelty or None); a passing problem joins the pool (later ones must be new to it)."""
        text = parse_problem(self.kind, proposal)
        if text is None:
            return self._reject("parse", None)
        n = len(tokens(text))
        if not self.min_tokens <= n <= self.max_tokens:
            return self._reject("length", text)
        score = self.novelty(text)
        if score >= self.novelty_threshold:
            return self._reject("novelty", text, score)
        if grams(text, self.decontam_n) & self.grams:
            return self._reject("decontamination", text, score)
        self.pool.append(text)
        self.seen.add(text)
        return text, None, score

    def _reject(self, why: str, text: str | None, score: float | None = None) -> tuple[str | None, str, float | None]:
        self.counts[why] += 1
        return text, why, score


def grams(text: str, n: int) -> frozenset[tuple[str, ...]]:
    """The ``n``-grams of ``text``'s :func:`tokens` (none for a text without tokens)."""
    toks = tokens(text)
    return ngrams(toks, n) if toks else frozenset()


def in_band(rate: float | None, low: float, high: float) -> bool:
    """The difficulty filter: an estimated pass rate strictly between ``low`` and ``high``."""
    return rate is not None and low < rate < high

