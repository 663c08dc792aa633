"""Loop-side records: :class:`Sample` (one sampled completion). Problem and Verdict live in
``starloop.verifiers.types`` because verifiers are usable without the loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from starloop.verifiers.types import Problem, Verdict

__all__ = ["Problem", "Sample", "Verdict"]


@dataclass
class Sample:
    """One completion sampled for a problem, with its provenance.

    ``prompt`` is the rendered text the model saw; for a STaR rationalization (``hinted``)
    that prompt contains the answer hint, and the trace is later stored under the hint-free
    prompt. ``finish_reason`` is ``stop`` or ``length`` (cut off by max_tokens).
    """

    problem_id: str
    iteration: int
    prompt: str
    completion: str
    finish_reason: str
    num_tokens: int
    index: int = 0
    hinted: bool = False
    model: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    verdict: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Sample:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def verdict_obj(self) -> Verdict | None:
        return None if self.verdict is None else Verdict.from_dict(self.verdict)

    @property
    def correct(self) -> bool:
        return bool(self.verdict and self.verdict["correct"])
