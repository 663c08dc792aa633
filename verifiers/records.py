"""The records shared by verifiers and the loop: :class:`Problem` and :class:`Verdict`.

Each type is defined here once; everything else imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Reason = Literal["ok", "wrong", "unparseable", "truncated", "timeout", "error"]
REASONS: tuple[str, ...] = ("ok", "wrong", "unparseable", "truncated", "timeout", "error")


@dataclass(frozen=True)
class Problem:
    """One task instance.

    ``task`` names the verifier that judges completions for it. Math problems carry a gold
    ``answer``; code problems carry ``tests`` (Python assert code as a string, or a list of
    ``{"input", "output"}`` stdin/stdout cases). ``meta`` holds anything task specific
    (difficulty level, source dataset, entry point, ...).
    """

    id: str
    task: str
    prompt: str
    answer: str | None = None
    tests: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Problem:
        missing = [k for k in ("id", "task", "prompt") if k not in row]
        if missing:
            raise ValueError(f"problem row is missing field(s) {missing}: {str(row)[:200]}")
        return cls(
            id=str(row["id"]),
            task=str(row["task"]),
            prompt=str(row["prompt"]),
            answer=None if row.get("answer") is None else str(row["answer"]),
            tests=row.get("tests"),
            meta=dict(row.get("meta") or {}),
        )


@dataclass(frozen=True)
class Verdict:
    """The judgement of one completion.

    ``reason`` separates failure kinds: a truncated completion is not a wrong one, and a
    sandbox timeout is not a wrong answer. ``extracted`` is what the verifier read as the
    model's answer (or program); ``detail`` is a short human-readable explanation. ``verifier``
    and ``verifier_version`` name what made it (set by the registry's ``verify_one`` /
    ``verify_batch``).
    """

    correct: bool
    score: float
    reason: Reason
    extracted: str | None = None
    detail: str = ""
    verifier: str | None = None
    verifier_version: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown verdict reason {self.reason!r}; expected one of {REASONS}")
        if self.correct and self.reason != "ok":
            raise ValueError(f"a correct verdict must have reason 'ok', got {self.reason!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Verdict:
        return cls(
            correct=bool(row["correct"]),
            score=float(row["score"]),
            reason=row["reason"],
            extracted=row.get("extracted"),
            detail=row.get("detail", ""),
            verifier=row.get("verifier"),
            verifier_version=row.get("verifier_version"),
        )

    @classmethod
    def ok(cls, extracted: str | None = None, detail: str = "", score: float = 1.0) -> Verdict:
        return cls(True, score, "ok", extracted, detail)

    @classmethod
    def fail(cls, reason: Reason, extracted: str | None = None, detail: str = "", score: float = 0.0) -> Verdict:
        return cls(False, score, reason, extracted, detail)
