"""GSM8K (``openai/gsm8k``, config ``main`` or ``socratic``): grade-school math word problems.

Schema: ``question``, ``answer`` (a worked solution whose last line is ``#### <number>``). The gold
answer is the number after the last ``####`` with thousands separators removed; the worked
solution is kept in ``meta["solution"]``. Problems are judged by the ``math`` verifier.
"""

from __future__ import annotations

from starloop.loop.config import DatasetConfig
from starloop.loop.errors import InputError
from starloop.loop.tasks.generic import LoadOptions, load_rows, parse_options, require, split_name
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.records import Problem


def gold_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution: what follows the last ``####``, without commas."""
    if "####" not in solution:
        return None
    ans = solution.rsplit("####", 1)[1].strip().replace(",", "")
    return ans.rstrip(".") or None


@register_adapter("gsm8k")
def gsm8k(cfg: DatasetConfig, seed: int) -> list[Problem]:
    opts = parse_options(LoadOptions, cfg)
    split = split_name(cfg)
    problems = []
    for row in load_rows(cfg, opts):
        require(row, ["question", "answer"], cfg, "GSM8K")
        gold = gold_answer(str(row["answer"]))
        if gold is None:
            raise InputError(f"gsm8k ({cfg.path}) row {row['_index']}: field 'answer' has no '#### <answer>' line")
        problems.append(
            Problem(
                id=f"gsm8k-{split}-{row['_index']}",
                task=cfg.task or "math",
                prompt=str(row["question"]).strip(),
                answer=gold,
                meta={"source": "gsm8k", "solution": str(row["answer"])},
            )
        )
    return problems
