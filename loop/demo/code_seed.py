"""The code demo's seed model, ``builtin:listfn``: a character-level tokenizer and a small Llama trained
from scratch on reference programs of the list-function task (``starloop.loop.tasks.listfn``, seed split):
many one-operation functions and a few longer pipelines, the "human-written seeds". Built once and cached
like the arithmetic demo's seed model (see ``seed_model.build_cached``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starloop.loop.config import PromptConfig, build
from starloop.loop.demo.seed_model import TinyBuildOptions, build_cached, rows_per_level
from starloop.loop.runtime.models import register_builtin_model
from starloop.loop.tasks.listfn import OPS, ListFnOptions, generate


@dataclass
class CodeSeedOptions(TinyBuildOptions):
    seed_levels: dict[str, int] = field(default_factory=lambda: {"1": 2000, "2": 300})
    """Reference programs per level (number of operations)."""
    task: dict[str, Any] = field(default_factory=dict)
    """Further ``listfn`` options of the seed problems (``ops``, list lengths, shown pairs); must match the
    runs' ``data.*.options``."""
    intermediate_size: int = 256
    num_hidden_layers: int = 3
    epochs: float = 30.0
    lr: float = 3e-3
    max_length: int = 256
    line_tokens: bool = False
    """One token for each operation's line of Python (``OPS``, with its indent) and for the function's first and
    last line, characters for the rest: a program of the code demo is 23 tokens on average instead of 74, so
    sampling, training and the build take less time."""


def seed_rows(opts: CodeSeedOptions, seed: int) -> list[dict[str, Any]]:
    """Seed-split problems with their reference programs, level by level."""
    def draw(level: int, count: int) -> list[dict[str, Any]]:
        o = build(ListFnOptions, {**opts.task, "split": "seed", "levels": [level], "per_level": count},
                  prefix="model.builtin_options.task.")
        return generate(o, seed, at_most=True)

    return rows_per_level(opts.seed_levels, draw)


@register_builtin_model("listfn")
def build_code_seed_model(options: dict[str, Any], prompt_cfg: PromptConfig, cache_dir: str | Path, seed: int) -> Path:
    """Path of the code demo's seed model for ``options``; trains and caches it on first use."""
    opts = build(CodeSeedOptions, dict(options), prefix="model.builtin_options.")
    if opts.seed is not None:
        seed = opts.seed
    pairs = [(r["prompt"], r["solution"]) for r in seed_rows(opts, seed)]
    return build_cached("listfn", opts, pairs, prompt_cfg, cache_dir, seed, words=line_tokens(opts))


def line_tokens(opts: CodeSeedOptions) -> list[str]:
    """The lines that are one token each with ``line_tokens`` (none without): those of the task's operations
    (``task.ops``), ``def f(x):`` and `` return x``."""
    if not opts.line_tokens:
        return []
    ops = build(ListFnOptions, dict(opts.task), prefix="model.builtin_options.task.").ops
    return ["def f(x):", " return x", *(f" {OPS[name][0]}" for name in ops)]
