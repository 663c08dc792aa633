"""HumanEval (``openai/openai_humaneval``, split ``test``): complete a Python function from its
signature and docstring.

Schema: ``task_id``, ``prompt`` (imports, signature, docstring), ``canonical_solution``, ``test``
(defines ``check(candidate)``), ``entry_point``. The problem's tests are ``test`` followed by
``check(<entry_point>)``, run after the model's solution (``code`` verifier). The prompt asks for
the complete function; ``meta`` keeps ``entry_point``, and ``imports`` (the prompt's import lines,
which a solution that restates only the function may leave out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starloop.loop.config import DatasetConfig
from starloop.loop.tasks.generic import LoadOptions, load_rows, parse_options, require
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.records import Problem

_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$", re.M)


@dataclass
class HumanEvalOptions(LoadOptions):
    instruction: str = "Complete the following Python function:"
    """Shown before the function stub; the stub itself follows in a ```python block."""


def prompt_imports(code: str) -> str:
    """The top-level import lines of ``code``, one per line."""
    return "\n".join(m.group(0).strip() for m in _IMPORT.finditer(code))


@register_adapter("humaneval")
def humaneval(cfg: DatasetConfig, seed: int) -> list[Problem]:
    opts = parse_options(HumanEvalOptions, cfg)
    problems = []
    for row in load_rows(cfg, opts):
        require(row, ["task_id", "prompt", "test", "entry_point"], cfg, "HumanEval")
        stub, entry = str(row["prompt"]), str(row["entry_point"])
        body = stub.lstrip("\n").rstrip()
        problems.append(
            Problem(
                id=str(row["task_id"]),
                task=cfg.task or "code",
                prompt=f"{opts.instruction}\n```python\n{body}\n```".lstrip(),
                tests=f"{str(row['test']).rstrip()}\n\n\ncheck({entry})\n",
                meta={
                    "source": "humaneval",
                    "entry_point": entry,
                    "imports": prompt_imports(stub),
                    "stub": stub,
                    "solution": str(row.get("canonical_solution") or ""),
                },
            )
        )
    return problems
