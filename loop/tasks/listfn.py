"""The built-in code task: list functions specified by examples (programming by example).

A problem shows a few input/output pairs of an unknown function on lists of digits, e.g.
``f([3,1,2])=[2,1,3]; f([5,0,7])=[7,0,5]``, and asks for the function in Python. The function is
a pipeline of primitive list operations (reverse, sort, add k, double, drop the first or last
element, keep the even or odd elements); the problem's level is the number of operations. A
reference solution (``meta["solution"]``) writes one operation per line::

    def f(x):
     x=sorted(x)
     x=x[::-1]
     return x

A completion is checked only by running the problem's tests in the sandbox (verifier ``code``):
the shown pairs and ``hidden`` more inputs, as ``assert`` statements. Any program that passes is
correct, whatever operations it uses. A problem is drawn only if its shown pairs pin the function
down (no other pipeline of at most ``max(level, 2)`` operations that fits them fails a hidden test)
and if no shorter pipeline computes the same outputs (see :func:`well_posed`).

Deterministic in ``(split, seed)``. Splits are disjoint by construction: a problem belongs to
exactly one split by a hash of its prompt (as in the arithmetic task, see
:func:`starloop.loop.tasks.arithmetic.split_of`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from starloop.loop.config import ConfigError, DatasetConfig, build
from starloop.loop.tasks.arithmetic import SPLITS, draw_distinct, split_of
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.records import Problem

Op = Callable[[list[int]], list[int]]
OPS: dict[str, tuple[str, Op]] = {
    "reverse": ("x=x[::-1]", lambda x: x[::-1]),
    "sort": ("x=sorted(x)", sorted),
    "add1": ("x=[v+1 for v in x]", lambda x: [v + 1 for v in x]),
    "add2": ("x=[v+2 for v in x]", lambda x: [v + 2 for v in x]),
    "add3": ("x=[v+3 for v in x]", lambda x: [v + 3 for v in x]),
    "double": ("x=[v*2 for v in x]", lambda x: [v * 2 for v in x]),
    "drop_first": ("x=x[1:]", lambda x: x[1:]),
    "drop_last": ("x=x[:-1]", lambda x: x[:-1]),
    "evens": ("x=[v for v in x if v%2==0]", lambda x: [v for v in x if v % 2 == 0]),
    "odds": ("x=[v for v in x if v%2==1]", lambda x: [v for v in x if v % 2 == 1]),
}
"""Name -> (the line of Python, the operation)."""


@dataclass
class ListFnOptions:
    split: str = "train"
    """train, eval (held out), or seed (the seed model's worked programs)."""
    levels: list[int] = field(default_factory=lambda: [2])
    """Numbers of operations per function."""
    per_level: int = 200
    counts: dict[str, int] = field(default_factory=dict)
    """Problems per level for some levels (level -> count), overriding ``per_level`` for those."""
    shown: int = 3
    """Input/output pairs in the prompt (each is also a test)."""
    hidden: int = 2
    """Further test inputs the prompt does not show."""
    min_len: int = 3
    max_len: int = 5
    """Length range of the input lists (digits 0-9)."""
    ops: list[str] = field(default_factory=lambda: list(OPS))
    """The primitive operations functions are made of (names of ``OPS``)."""
    eval_share: float = 0.2
    seed_share: float = 0.2
    worked: bool = True
    """Reference programs show their work: each line's comment is the list after it for the first shown input
    (a chain of thought that the tests do not check)."""
    seed: int | None = None
    """Draw with this seed instead of the run's (``data.real`` replaying a seed model's seed set)."""

    def __post_init__(self) -> None:
        unknown = [o for o in self.ops if o not in OPS]
        if unknown:
            raise ConfigError(f"listfn ops {unknown} are unknown; known: {sorted(OPS)}")
        if not 1 <= self.min_len <= self.max_len:
            raise ConfigError(f"listfn needs 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if self.shown < 1 or self.hidden < 0:
            raise ConfigError(f"listfn needs shown >= 1 and hidden >= 0, got {self.shown}, {self.hidden}")


def program(names: tuple[str, ...], worked: list[int] | None = None) -> str:
    """The reference solution for a pipeline of operations; with ``worked`` (an input), every line ends
    with a comment showing the list after it for that input."""
    lines = []
    for i, n in enumerate(names):
        note = f" # {_fmt(apply(names[:i + 1], worked))}" if worked is not None else ""
        lines.append(f" {OPS[n][0]}{note}\n")
    return "def f(x):\n" + "".join(lines) + " return x"


def apply(names: tuple[str, ...], x: list[int]) -> list[int]:
    for n in names:
        x = OPS[n][1](x)
    return x


@lru_cache(maxsize=8)
def _pipelines(ops: tuple[str, ...], depth: int) -> list[tuple[str, ...]]:
    return [p for d in range(depth + 1) for p in itertools.product(ops, repeat=d)]


def well_posed(names: tuple[str, ...], shown: list[list[int]], hidden: list[list[int]], ops: tuple[str, ...]) -> bool:
    """Whether the pipeline is irreducible and pinned down by its shown pairs: no pipeline with fewer
    operations gives the same outputs on all inputs (so the level is the function's true number of
    operations, none: the identity), and every pipeline of at most ``max(len(names), 2)`` operations that fits the shown pairs
    also fits the hidden ones."""
    want = [apply(names, x) for x in shown + hidden]
    for other in _pipelines(ops, max(len(names), 2)):
        if all(apply(other, x) == y for x, y in zip(shown, want, strict=False)):
            fits_hidden = all(apply(other, x) == y for x, y in zip(hidden, want[len(shown):], strict=True))
            if not fits_hidden or (len(other) < len(names) and other != names):
                return False
    return True


def _fmt(x: list[int]) -> str:
    return "[" + ",".join(map(str, x)) + "]"


def render(names: tuple[str, ...], inputs: list[list[int]]) -> str:
    """The prompt: the shown input/output pairs."""
    return "; ".join(f"f({_fmt(x)})={_fmt(apply(names, x))}" for x in inputs)


def tests(names: tuple[str, ...], inputs: list[list[int]]) -> str:
    return "".join(f"assert f({_fmt(x)})=={_fmt(apply(names, x))}\n" for x in inputs)


def _draw(rng: random.Random, level: int, o: ListFnOptions) -> tuple[tuple[str, ...], list[list[int]]]:
    names = tuple(rng.choice(o.ops) for _ in range(level))
    inputs = [[rng.randint(0, 9) for _ in range(rng.randint(o.min_len, o.max_len))] for _ in range(o.shown + o.hidden)]
    return names, inputs


def generate(o: ListFnOptions, seed: int, *, at_most: bool = False) -> list[dict[str, Any]]:
    """Rows {id, prompt, tests, solution, level, ops} for split ``o.split``, deterministic in ``seed``
    (``o.seed`` instead, when set). A level that cannot yield its count raises, unless ``at_most``."""
    if o.split not in SPLITS:
        raise ConfigError(f"listfn split must be one of {SPLITS}, got {o.split!r}")
    stream = {"train": 1, "eval": 2, "seed": 3}[o.split]
    seed = o.seed if o.seed is not None else seed
    ops = tuple(o.ops)
    rows, seen = [], set()
    for level in o.levels:
        rng = random.Random(f"listfn-{seed}-{stream}-{level}")

        def problem(level: int = level, rng: random.Random = rng) -> tuple[str, tuple[tuple[str, ...], list[list[int]]]]:
            names, inputs = _draw(rng, level, o)
            return render(names, inputs[: o.shown]), (names, inputs)

        def fits(item: tuple[tuple[str, ...], list[list[int]]]) -> bool:
            names, inputs = item
            shown, hidden = inputs[: o.shown], inputs[o.shown:]
            return all(apply(names, x) for x in shown) and well_posed(names, shown, hidden, ops)

        want = o.counts.get(str(level), o.per_level)
        drawn = draw_distinct(problem, want, seen, lambda p: split_of(p, o.eval_share, o.seed_share) == o.split, fits,
                              max_tries=50 * want, at_most=at_most, what=f"level-{level} listfn problems for {o.split}")
        for count, (prompt, (names, inputs)) in enumerate(drawn, 1):
            rows.append({"id": f"{o.split}-F{level}-{count:05d}", "prompt": prompt, "tests": tests(names, inputs),
                         "solution": program(names, inputs[0] if o.worked else None), "level": level,
                         "ops": list(names)})
    return rows


@register_adapter("listfn")
def listfn(cfg: DatasetConfig, seed: int) -> list[Problem]:
    o = build(ListFnOptions, dict(cfg.options), prefix=f"data.{cfg.source}.options.")
    return [Problem(id=r["id"], task=cfg.task or "code", prompt=r["prompt"], tests=r["tests"],
                    meta={"level": r["level"], "solution": r["solution"], "ops": r["ops"], "entry_point": "f"})
            for r in generate(o, seed)]
