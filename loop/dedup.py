"""Near-duplicate removal of traces by word n-gram Jaccard similarity (as Self-Instruct filters
near-identical instructions, there with ROUGE-L).

The similarity is exact: each trace is compared with every kept trace of its group. Traces are
only compared within one problem (tens of them), where this quadratic comparison is cheap and
exact; MinHash / LSH (e.g. ``datasketch``) approximates the same Jaccard similarity to scale to
millions of documents, which this use does not need. The same measure serves the ``hardest``
pairing strategy (similarity of a failed completion to the correct one, ``starloop.loop.pairs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    """The set of word ``n``-grams of ``text`` (the whole word sequence when shorter than ``n``)."""
    words = text.split()
    if len(words) < n:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


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
