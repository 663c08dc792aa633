"""MATH (Hendrycks et al.) and MATH-500: competition mathematics with LaTeX answers.

- ``math``: the MATH schema (``problem``, ``solution``, ``level`` like ``"Level 3"``, ``type``), e.g.
  ``EleutherAI/hendrycks_math`` with ``options.name`` a list of its subject configs, or
  ``DigitalLearningGmbH/MATH-lighteval``. The gold answer is the content of the last ``\\boxed{}``
  (or ``\\fbox{}``) in the solution.
- ``math500``: ``HuggingFaceH4/MATH-500`` (``problem``, ``solution``, ``answer``, ``subject``,
  ``level`` as an int, ``unique_id``). Its ``answer`` column is the gold answer.

Both keep ``level`` (as an int, for per-level metrics), ``subject`` (and MATH's ``type``) and the
solution in ``meta``, and go to the ``math`` verifier. ``options.levels`` / ``options.subjects``
keep only problems of those levels / subjects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starloop.loop.config import DatasetConfig
from starloop.loop.errors import InputError
from starloop.loop.tasks.generic import LoadOptions, load_rows, parse_options, require, split_name
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.records import Problem

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed\s+([^\s$]+)")


@dataclass
class MathOptions(LoadOptions):
    levels: list[int] = field(default_factory=list)
    """Keep only these difficulty levels (1..5); empty = all."""
    subjects: list[str] = field(default_factory=list)
    """Keep only these subjects (``Algebra``, ``Number Theory``, ...; case-insensitive); empty = all."""


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched), or of ``\\boxed 5``."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    if m.group(2) is not None:
        return m.group(2).rstrip(".,") or None
    depth, start = 1, m.end(1)
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[start:j].strip()
    return None


def parse_level(value: object) -> int | None:
    """``3`` or ``"Level 3"`` -> 3; anything else (MATH has a few ``"Level ?"``) -> None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(?:Level\s*)?(\d+)\s*", str(value or ""))
    return int(m.group(1)) if m else None


def _problems(cfg: DatasetConfig, *, kind: str) -> list[Problem]:
    opts = parse_options(MathOptions, cfg)
    split = split_name(cfg)
    subjects = {s.lower() for s in opts.subjects}
    problems = []
    for row in load_rows(cfg, opts):
        require(row, ["problem", "solution"] + (["answer"] if kind == "math500" else []), cfg,
                "MATH-500" if kind == "math500" else "MATH")
        solution = str(row["solution"])
        gold = str(row["answer"]).strip() if kind == "math500" else last_boxed(solution)
        if not gold:
            raise InputError(f"{kind} ({cfg.path}) row {row['_index']}: no \\boxed{{}} answer in field 'solution'")
        level = parse_level(row.get("level"))
        subject = row.get("subject") or row.get("type")
        if opts.levels and level not in opts.levels:
            continue
        if subjects and str(subject).lower() not in subjects:
            continue
        meta = {"source": kind, "solution": solution}
        if level is not None:
            meta["level"] = level
        if subject is not None:
            meta["subject"] = str(subject)
        if row.get("type") is not None:
            meta["type"] = str(row["type"])
        pid = row.get("unique_id")
        problems.append(
            Problem(
                id=f"{kind}-{pid}" if pid else f"{kind}-{split}-{row['_index']}",
                task=cfg.task or "math",
                prompt=str(row["problem"]).strip(),
                answer=gold,
                meta=meta,
            )
        )
    return problems


@register_adapter("math")
def math_adapter(cfg: DatasetConfig, seed: int) -> list[Problem]:
    return _problems(cfg, kind="math")


@register_adapter("math500")
def math500_adapter(cfg: DatasetConfig, seed: int) -> list[Problem]:
    return _problems(cfg, kind="math500")
