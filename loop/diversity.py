"""Diversity statistics of a set of texts."""

from __future__ import annotations

from collections.abc import Sequence


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n: unique word n-grams / total word n-grams over all texts (0 when there are none)."""
    total, unique = 0, set()
    for t in texts:
        words = t.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0
