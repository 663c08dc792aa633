"""The rationalization demo's seed model, ``builtin:addition``: a character-level tokenizer and a small Llama
trained from scratch on worked column-by-column sums (``starloop.loop.tasks.addition``, seed split): many short
sums, a few of the length it is evaluated on, and a share of them also under STaR's hinted prompt. Built once
and cached like the arithmetic demo's seed model (see ``seed_model.build_cached``), and stopped at a target
greedy accuracy on held-out seed-split sums of the longest seed level, so that its strength is set by the recipe.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starloop.loop.config import PromptConfig, build
from starloop.loop.demo.seed_model import TinyBuildOptions, accuracy_stop, build_cached
from starloop.loop.demo.target_stop import StopAtAccuracy
from starloop.loop.runtime.models import register_builtin_model
from starloop.loop.tasks.addition import AdditionOptions, generate

log = logging.getLogger(__name__)


@dataclass
class AdditionSeedOptions(TinyBuildOptions):
    seed_levels: dict[str, int] = field(default_factory=lambda: {"2": 1500, "3": 1500, "4": 1500, "5": 1000})
    """Worked sums per level (number of digits)."""
    hinted_levels: dict[str, int] = field(default_factory=dict)
    """More worked sums per level shown only under the hinted prompt (never plain)."""
    intermediate_size: int = 256
    num_hidden_layers: int = 3
    epochs: float = 8.0
    lr: float = 3e-3
    hinted_fraction: float = 0.5
    """Share of the seed sums also shown under the hinted prompt (``hint_template``), with the full worked
    solution: the model learns that prompt, and that the answer's digits are those of every line."""
    hint_template: str = "({answer}) {prompt}"
    """Must match ``rationalize.hint_template`` of the runs that use this model."""
    target_accuracy: float | None = None
    """Stop once greedy decoding solves this share of ``validation_size`` held-out seed-split sums of the longest
    seed level (checked every ``check_every`` steps); None: train all ``epochs``."""
    validation_size: int = 200
    check_every: int = 10


def seed_rows(opts: AdditionSeedOptions, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
    """Seed-split worked sums: (plain ``seed_levels`` rows, ``hinted_levels`` rows, validation rows: the
    ``validation_size`` sums of the longest seed level after those), one draw per level, so none is in two."""
    top = max(int(k) for k in opts.seed_levels)
    plain, hinted, held = [], [], []
    for level in sorted({int(k) for k in (*opts.seed_levels, *opts.hinted_levels)}):
        n_plain, n_hinted = opts.seed_levels.get(str(level), 0), opts.hinted_levels.get(str(level), 0)
        n_held = opts.validation_size if level == top and opts.target_accuracy is not None else 0
        rows = generate(AdditionOptions(split="seed", levels=[level], per_level=n_plain + n_hinted + n_held), seed,
                        at_most=True)
        if len(rows) < n_plain + n_hinted + n_held:
            log.warning("seed model: %d-digit sums: only %d distinct seed-split ones (asked for %d)", level,
                        len(rows), n_plain + n_hinted + n_held)
        plain += rows[:n_plain]
        hinted += rows[n_plain:n_plain + n_hinted]
        held += rows[n_plain + n_hinted:]
    return plain, hinted, held


def training_pairs(opts: AdditionSeedOptions, seed: int, rows: tuple[list[dict[str, Any]], ...] | None = None
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(problem text, worked solution) rows of the build: (the plain seed sums, the hinted ones: a
    ``hinted_fraction`` of the plain sums and the ``hinted_levels`` sums, under ``hint_template``); ``rows``: the
    :func:`seed_rows` already drawn."""
    plain, only_hinted, _ = rows or seed_rows(opts, seed)
    picked = random.Random(f"{seed}-hinted").sample(plain, round(len(plain) * opts.hinted_fraction))
    return ([(r["expr"], r["rationale"]) for r in plain],
            [(opts.hint_template.format(prompt=r["expr"], answer=r["answer"]), r["rationale"])
             for r in picked + only_hinted])


@register_builtin_model("addition")
def build_addition_seed_model(options: dict[str, Any], prompt_cfg: PromptConfig, cache_dir: str | Path,
                              seed: int) -> Path:
    """Path of the rationalization demo's seed model for ``options``; trains and caches it on first use."""
    opts = build(AdditionSeedOptions, dict(options), prefix="model.builtin_options.")
    if opts.seed is not None:
        seed = opts.seed
    rows = seed_rows(opts, seed)
    plain, hinted = training_pairs(opts, seed, rows)

    def stops(init_dir: Path) -> list[StopAtAccuracy]:
        if opts.target_accuracy is None:
            return []
        return [accuracy_stop(rows[2], opts.target_accuracy, opts.check_every, init_dir, prompt_cfg)]

    return build_cached("addition", opts, plain + hinted, prompt_cfg, cache_dir, seed, stops, tokenizer_pairs=plain)
