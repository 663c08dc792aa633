"""Execution agreement for code without tests (CodeT's dual agreement, Chen et al. 2023).

A model writes solutions and, separately, tests for a problem that has none. Every solution runs
against every test in the sandbox (through the code verifier, one test at a time). Solutions that
pass exactly the same tests form a consensus set; a set scores (its solutions) x (the tests they
pass), so a behaviour that many solutions share and many tests confirm wins over a popular but
untested one, or one test that many broken solutions happen to satisfy. The winning set's tests are
the problem's pseudo-tests: its solutions pass them by construction, and every other solution is
judged by them as by any tests.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from starloop.verifiers.code import CodeConfig, verify_code_batch
from starloop.verifiers.records import Problem
from starloop.verifiers.registry import VerifyItem

_ASSERT = re.compile(r"^\s*(assert\b.*)$")


@dataclass
class Consensus:
    """The outcome of dual agreement for one problem."""

    status: str
    """``labeled``; ``tie`` (two consensus sets share the best score); ``no_consensus`` (no solution passes
    any test, or there are no tests or no solutions)."""
    solutions: list[int] = field(default_factory=list)
    """Indices of the winning set's solutions."""
    tests: list[int] = field(default_factory=list)
    """Indices of the tests they pass (the pseudo-tests)."""
    score: int = 0
    runner_up: int = 0
    passed: list[list[bool]] = field(default_factory=list)
    """passed[i][j]: solution i passes test j."""


def extract_tests(completion: str, max_tests: int | None = None) -> list[str]:
    """The single-line ``assert`` statements of a completion that parse as Python (in order, no repeats)."""
    found: list[str] = []
    for line in completion.splitlines():
        m = _ASSERT.match(line)
        if not m:
            continue
        test = m.group(1).rstrip()
        try:
            ast.parse(test)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if test not in found:
            found.append(test)
        if max_tests is not None and len(found) >= max_tests:
            break
    return found


def pass_matrix(problem: Problem, solutions: Sequence[str], tests: Sequence[str], *, config: CodeConfig | None = None,
                workers: int = 1) -> list[list[bool]]:
    """passed[i][j]: completion ``solutions[i]`` passes ``tests[j]``, run in the sandbox by the code verifier."""
    one = [dataclasses.replace(problem, id=f"{problem.id}#t{j}", tests=t) for j, t in enumerate(tests)]
    items = [VerifyItem(s, p) for s in solutions for p in one]
    verdicts = verify_code_batch(items, config, workers) if items else []
    n = len(tests)
    return [[verdicts[i * n + j].correct for j in range(n)] for i in range(len(solutions))]


def consensus(passed: Sequence[Sequence[bool]]) -> Consensus:
    """CodeT's dual agreement over a pass matrix: group solutions by the exact set of tests they pass, score each
    group (solutions x tests passed), and take the best; a tie for the best score gives no label."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(passed):
        groups[tuple(j for j, ok in enumerate(row) if ok)].append(i)
    scored = sorted(((len(sols) * len(tests), tests, sols) for tests, sols in groups.items() if tests), reverse=True)
    matrix = [list(r) for r in passed]
    if not scored:
        return Consensus("no_consensus", passed=matrix)
    best, tests, sols = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else 0
    status = "tie" if runner_up == best else "labeled"
    return Consensus(status, sols if status == "labeled" else [], list(tests) if status == "labeled" else [], best,
                     runner_up, matrix)


def dual_agreement(problem: Problem, solutions: Sequence[str], tests: Sequence[str], *,
                   config: CodeConfig | None = None, workers: int = 1) -> Consensus:
    """:func:`consensus` of ``solutions`` (completions) and ``tests`` (assert statements) for ``problem``."""
    if not solutions or not tests:
        return Consensus("no_consensus")
    return consensus(pass_matrix(problem, solutions, tests, config=config, workers=workers))
