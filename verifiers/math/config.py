"""The options of the math verifier: :class:`MathConfig` (``verify.options.math`` in a run config).

Kept apart from the verifier (:mod:`starloop.verifiers.math`) so that the comparison modules,
which also run inside the worker processes, can take it without importing the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MathConfig:
    """Options of the math verifier (``verify.options.math`` in a run config)."""

    timeout: float = 5.0
    """Wall-clock seconds for one comparison in a worker process; it is killed past this."""
    memory_mb: int = 1024
    """Address-space limit of a worker process during one comparison."""
    float_rounding: int | None = None
    """If set, a decimal answer matches a value that rounds to the same at this many places."""
    rel_tol: float = 0.0
    """If > 0, a decimal answer matches a value within this relative tolerance."""
    unordered_lists: bool = True
    """A bare list of answers (``1, 2``) matches in any order; False: order matters."""
    relation_matches_set: bool = False
    """Accept an inequality (``-2 \\le x \\le 7``, ``x < -2`` or ``x > 3``) for a gold interval or
    union (``[-2, 7]``) when it describes exactly that set; the reverse (an interval for a gold
    inequality) is always accepted. Off by default: see the math verifier's docstring."""
    strict_variables: bool = True
    """Variable names must match; False: ``f(y)`` matches ``f(x)``."""

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 600:
            raise ValueError(f"math option timeout must be in (0, 600] seconds, got {self.timeout!r}")
        if not 128 <= self.memory_mb <= 1 << 20:
            raise ValueError(f"math option memory_mb must be at least 128, got {self.memory_mb!r}")
        if self.float_rounding is not None and not (
            isinstance(self.float_rounding, int) and 0 <= self.float_rounding <= 50
        ):
            raise ValueError(f"math option float_rounding must be None or an int in [0, 50], got {self.float_rounding!r}")
        if not 0 <= self.rel_tol < 1:
            raise ValueError(f"math option rel_tol must be in [0, 1), got {self.rel_tol!r}")
