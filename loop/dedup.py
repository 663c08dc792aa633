"""Near-duplicate removal of traces by word n-gram Jaccard similarity (as Self-Instruct filters
near-identical instructions). Quadratic per group, which is fine for the <= tens of traces per
problem it is used on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    words = text.split()
    if len(words) < n:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
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
