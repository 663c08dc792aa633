"""Task adapters: turn a dataset description (:class:`DatasetConfig`) into :class:`Problem` s.

Adapters are registered by name; ``data.train.source`` / ``data.eval.source`` pick one:
``arithmetic`` (the demo task), ``addition`` (the rationalization demo's task), ``listfn`` (the code demo's task), ``gsm8k``, ``math``, ``math500``, ``mbpp``, ``humaneval``, the generic
``jsonl`` / ``parquet`` / ``hub`` / ``file`` (any schema, through ``data.*.fields``), and ``mixed``
(several datasets pooled; each problem's ``task`` picks its verifier). :func:`load_solutions`
reads ``data.real``: gold worked solutions to mix into the SFT sets.
"""

from starloop.loop.tasks import addition, arithmetic, generic, gsm8k, humaneval, listfn, math_tasks, mbpp  # noqa: F401 - registers
from starloop.loop.tasks.generic import load_solutions
from starloop.loop.tasks.registry import adapter_names, load_problems, register_adapter

__all__ = ["adapter_names", "load_problems", "load_solutions", "register_adapter"]
