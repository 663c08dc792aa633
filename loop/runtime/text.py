"""Text measures over completions: normalization for exact duplicates, word n-gram shingles and
their Jaccard similarity (near duplicates, the ``hardest`` pairing strategy), distinct-n diversity.

Near duplicates are found exactly: each trace is compared with every kept trace of its group,
and groups are one problem's candidates (tens of them), where the quadratic comparison is cheap.
MinHash / LSH (e.g. ``datasketch``) approximates the same Jaccard similarity to scale to
millions of documents, which this use does not need. As Self-Instruct filters near-identical
instructions (there with ROUGE-L).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def normalize(text: str) -> str:
    """Whitespace-normalized text: equal for completions that differ only in spacing."""
    return re.sub(r"\s+", " ", text).strip()


def ngrams(tokens: Sequence[str], n: int) -> frozenset[tuple[str, ...]]:
    """The set of ``n``-grams of ``tokens`` (the whole sequence, one gram, when shorter than ``n``)."""
    if len(tokens) < n:
        return frozenset({tuple(tokens)})
    return frozenset(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    """The set of word ``n``-grams of ``text`` (the whole word sequence when shorter than ``n``)."""
    return ngrams(text.split(), n)


def jaccard(a: frozenset, b: frozenset) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def drop_near_duplicates(items: Sequence[T], *, key: Callable[[T], str], threshold: float, n: int = 3) -> list[T]:
    """Keep items in order, dropping any whose similarity to a kept one is >= ``threshold``."""
    kept: list[T] = []
    kept_sh: list[frozenset] = []
    for it in items:
        sh = shingles(key(it), n)
        if any(jaccard(sh, k) >= threshold for k in kept_sh):
            continue
        kept.append(it)
        kept_sh.append(sh)
    return kept


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n: unique word n-grams / total word n-grams over all texts (0 when there are none)."""
    total, unique = 0, set()
    for t in texts:
        words = t.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


CUTS: tuple[str, ...] = ("none", "step", "word")


def cut_at_departure(chosen: str, rejected: str, cut: str) -> str:
    """``rejected`` up to the end of the line (``cut="step"``) or word (``"word"``: a run of letters,
    digits and underscores, or else the one character) in which it first differs from ``chosen``;
    whole with ``"none"``, or when it is a prefix of ``chosen`` (it stopped early: the stop is the
    departure)."""
    if cut == "none":
        return rejected
    if cut not in CUTS:
        raise ValueError(f"unknown cut {cut!r}; known: {list(CUTS)}")
    k = 0
    while k < len(chosen) and k < len(rejected) and chosen[k] == rejected[k]:
        k += 1
    if k >= len(rejected):
        return rejected
    if cut == "step":
        end = rejected.find("\n", k)
        return rejected if end < 0 else rejected[:end + 1]
    if not (rejected[k].isalnum() or rejected[k] == "_"):
        return rejected[:k + 1]
    end = k
    while end < len(rejected) and (rejected[end].isalnum() or rejected[end] == "_"):
        end += 1
    return rejected[:end]
