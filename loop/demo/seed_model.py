"""The demo's seed model, ``builtin:arithmetic``: a character-level tokenizer and a small Llama
trained from scratch on worked arithmetic rationales (the "human-written seeds" of STaR),
built once and cached.

The build is deterministic in its options and seed; the cache key is a hash of both, so a
changed option builds a new model instead of silently reusing an old one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starloop.loop.config import PromptConfig, RationalizeConfig, SFTSection, TrainConfig, build
from starloop.loop.demo.target_stop import Probe, StopAtAccuracy
from starloop.loop.demo.tinymodel import TinyModelSpec, build_char_tokenizer, build_tiny_llama, save_model
from starloop.loop.runtime.models import register_builtin_model
from starloop.loop.runtime.prompts import render_prompt
from starloop.loop.runtime.synthesis import proposal_prompt
from starloop.loop.runtime.trainers import train_sft
from starloop.loop.tasks.arithmetic import ArithmeticOptions, generate
from starloop.verifiers.arithmetic import parse_chain

log = logging.getLogger(__name__)


@dataclass
class TinyBuildOptions:
    """A seed model's size and its from-scratch SFT recipe (shared by the demos' seed models)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    epochs: float = 3.0
    lr: float = 2e-3
    batch_size: int = 64
    max_length: int = 160
    seed: int | None = None
    """Seed of the build (which seed problems, initial weights, data order); None = the run's seed.
    Fixing it makes the seed model a fixed starting point, like a pretrained base model, that
    runs with different seeds start from."""
    threads: int | None = None
    """Torch threads for the build's training (restored afterwards); None: as many as the process uses
    (``OMP_NUM_THREADS``). The build runs before any sampling engine, so on 2 cores 2 threads train it about 1.5
    times as fast as one. Part of the cache key: a thread count may change float sums (the unlabeled demo's model
    comes out the same to the byte on 1 and 2 threads, but that is not promised for every model)."""


@dataclass
class SeedModelOptions(TinyBuildOptions):
    seed_levels: dict[str, int] = field(default_factory=lambda: {"2": 1500, "3": 1500, "4": 100})
    """Worked examples per level (number of operands)."""
    max_operand: int = 99
    rationale_width: int = 0
    """Right-align the lines of the worked rationales to this many characters (``width`` of the arithmetic task)."""
    wide_levels: dict[str, int] = field(default_factory=dict)
    """More worked examples per level with operands up to ``wide_max_operand`` (at least one of them above
    ``max_operand``): lines as wide as those of longer chains of small numbers, so that (with
    ``rationale_width``) the width of a line is no sign of how many operands it has."""
    wide_max_operand: int = 99
    long_levels: dict[str, int] = field(default_factory=dict)
    """More worked examples per level of chains with other operators (``long_ops``, operands from
    ``long_min_operand`` to ``long_max_operand``; only chains with an operator other than ``+`` and ``-``): chains
    longer than any ``+``/``-`` chain of the seed set, so that a line's number is no sign of where a chain ends,
    without teaching a single longer ``+``/``-`` chain."""
    long_ops: str = "*"
    long_min_operand: int = 1
    long_max_operand: int = 3
    hinted_fraction: float = 0.0
    """Share of seed rationales also shown with the answer hint in the prompt (``hint_template``), so
    the model knows the hinted prompt format that STaR rationalization uses; always stored with
    the full worked rationale, never with the answer alone."""
    hint_template: str = RationalizeConfig.hint_template
    """Must match ``rationalize.hint_template`` of the runs that use this model."""
    target_accuracy: float | None = None
    """Stop training once greedy accuracy on held-out seed-split chains of the highest seed level reaches this
    share (checked every ``check_every`` steps; see ``target_stop``): the seed model's strength is then
    set by the recipe, not by the luck of its seed. None: train all ``epochs``."""
    validation_size: int = 200
    """Held-out seed-split chains of the highest level for ``target_accuracy`` (never trained on)."""
    check_every: int = 10
    proposal_rows: int = 0
    """Rows that teach the model to propose a problem (the synthesize stage's Self-Instruct prompt): a
    ``proposal_template`` showing ``proposal_k`` seed chains, completed by another one. Must match the
    ``synthesize`` section of the runs that use this model. 0: none (the default demo's model)."""
    proposal_k: int = 3
    proposal_template: str = "{examples}Q: "
    proposal_example: str = "Q: {prompt}\n"


PROPOSAL_FIELDS = ("proposal_rows", "proposal_k", "proposal_template", "proposal_example")
LATER_DEFAULTS = {"rationale_width": 0, "wide_levels": {}, "wide_max_operand": 99,
                  "long_levels": {}, "long_ops": "*", "long_min_operand": 1, "long_max_operand": 3, "threads": None,
                  "line_tokens": False}
"""Options added after the demo's model was first cached: at these values they stay out of the cache key."""


def rows_per_level(seed_levels: dict[str, int], draw: Callable[[int, int], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``draw(level, count)`` for every level in ascending order, concatenated; warns about a level that has
    fewer distinct seed-split problems than asked for."""
    rows = []
    for level, count in sorted(seed_levels.items(), key=lambda kv: int(kv[0])):
        got = draw(int(level), count)
        if len(got) < count:
            log.warning("seed model: level %s has only %d distinct seed-split problems (asked for %d)", level,
                        len(got), count)
        rows += got
    return rows


def seed_rows(opts: SeedModelOptions, seed: int) -> list[dict[str, Any]]:
    """Worked rationales {expr, answer, level, rationale} of the seed split."""
    def draw(max_operand: int, ops: str = "+-", min_operand: int = 0) -> Callable[[int, int], list[dict[str, Any]]]:
        return lambda level, count: generate(ArithmeticOptions(
            split="seed", levels=[level], per_level=count, max_operand=max_operand, min_operand=min_operand, ops=ops,
            width=opts.rationale_width), seed, at_most=True)

    rows = rows_per_level(opts.seed_levels, draw(opts.max_operand))
    wide = rows_per_level(opts.wide_levels, draw(opts.wide_max_operand)) if opts.wide_levels else []
    long_draw = draw(opts.long_max_operand, opts.long_ops, opts.long_min_operand)
    long = rows_per_level(opts.long_levels, long_draw) if opts.long_levels else []
    long = [r for r in long if set(parse_chain(r["expr"])[1]) - set("+-")]  # never a chain of the task itself
    return rows + [r for r in wide if max(parse_chain(r["expr"])[0]) > opts.max_operand] + long


def validation_rows(opts: SeedModelOptions, seed: int) -> list[dict[str, Any]]:
    """``validation_size`` seed-split chains of the highest seed level that the seed rows do not contain (the
    same draw, continued past the rows trained on)."""
    level, count = max(((int(k), v) for k, v in opts.seed_levels.items()))
    o = ArithmeticOptions(split="seed", levels=[level], per_level=count + opts.validation_size,
                          max_operand=opts.max_operand, width=opts.rationale_width)
    return generate(o, seed, at_most=True)[count:]


def accuracy_stop(rows: list[dict[str, Any]], target: float, check_every: int, init_dir: Path,
                  prompt_cfg: PromptConfig) -> StopAtAccuracy:
    """The early stop at ``target`` greedy accuracy on worked ``rows`` ({expr, rationale}: held-out validation
    problems), with the tokenizer of the model in ``init_dir``."""
    from transformers import AutoTokenizer  # heavy: deferred

    tok = AutoTokenizer.from_pretrained(init_dir)
    probe = Probe([render_prompt(tok, r["expr"], prompt_cfg) for r in rows], [r["rationale"] for r in rows])
    return StopAtAccuracy(probe, tok, target, check_every=check_every)


def stop_callbacks(opts: SeedModelOptions, seed: int, init_dir: Path, prompt_cfg: PromptConfig) -> list[Any]:
    """The early stop at ``target_accuracy`` (none without one)."""
    if opts.target_accuracy is None:
        return []
    return [accuracy_stop(validation_rows(opts, seed), opts.target_accuracy, opts.check_every, init_dir, prompt_cfg)]


def hinted_rows(opts: SeedModelOptions, rows: list[dict[str, Any]], seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(hinted problem text, row) for a deterministic ``hinted_fraction`` of the seed rows."""
    n = round(len(rows) * opts.hinted_fraction)
    picked = random.Random(f"{seed}-hinted").sample(rows, n) if n else []
    return [(opts.hint_template.format(prompt=r["expr"], answer=r["answer"]), r) for r in picked]


def train_config(opts: TinyBuildOptions, seed: int) -> TrainConfig:
    """The seed model's SFT recipe, in TRL's names."""
    return TrainConfig(sft=SFTSection(enabled=True, args={
        "num_train_epochs": opts.epochs, "learning_rate": opts.lr, "per_device_train_batch_size": opts.batch_size,
        "max_length": opts.max_length, "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "seed": seed,
        "data_seed": seed, "logging_steps": 50, "gradient_checkpointing": False,
    }))


@register_builtin_model("arithmetic")
def build_seed_model(options: dict[str, Any], prompt_cfg: PromptConfig, cache_dir: str | Path, seed: int) -> Path:
    """Path of the seed model for ``options``; trains and caches it on first use."""
    opts = build(SeedModelOptions, dict(options), prefix="model.builtin_options.")
    if opts.seed is not None:
        seed = opts.seed
    rows = seed_rows(opts, seed)
    plain = [(r["expr"], r["rationale"]) for r in rows]
    pairs = plain + [(text, r["rationale"]) for text, r in hinted_rows(opts, rows, seed)]
    return build_cached("arithmetic", opts, pairs, prompt_cfg, cache_dir, seed,
                        lambda init_dir: stop_callbacks(opts, seed, init_dir, prompt_cfg), tokenizer_pairs=plain,
                        raw_pairs=proposal_rows(opts, rows, seed))


def proposal_rows(opts: SeedModelOptions, rows: list[dict[str, Any]], seed: int) -> list[tuple[str, str]]:
    """(proposal prompt, a new seed chain) rows, as the synthesize stage asks (used as they are, not rendered)."""
    rng = random.Random(f"{seed}-proposals")
    exprs = [r["expr"] for r in rows]
    out = []
    for _ in range(opts.proposal_rows if len(exprs) > opts.proposal_k else 0):
        *shown, new = rng.sample(exprs, opts.proposal_k + 1)
        out.append((proposal_prompt(opts.proposal_template, opts.proposal_example, shown), new))
    return out


def cache_key(opts: TinyBuildOptions, prompt_cfg: PromptConfig, seed: int) -> str:
    """A hash of the build options, prompt config and seed. Options added later stay out of it at their defaults,
    so models built before they existed keep their key."""
    key_opts = asdict(opts)
    if not key_opts.get("proposal_rows"):
        key_opts = {k: v for k, v in key_opts.items() if k not in PROPOSAL_FIELDS}
    key_opts = {k: v for k, v in key_opts.items() if LATER_DEFAULTS.get(k, object()) != v}
    key_src = json.dumps({"opts": key_opts, "prompt": asdict(prompt_cfg), "seed": seed, "v": 1}, sort_keys=True)
    return hashlib.sha256(key_src.encode()).hexdigest()[:12]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: unchanged), then restore the process's count. Once an
    in-process vLLM CPU engine has bound its threads, torch's thread count is fixed for the process (vLLM replaces
    ``torch.set_num_threads`` with a no-op): the block then runs on that count, with a warning."""
    if n is None:
        yield
        return
    import torch  # heavy: deferred

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    if torch.get_num_threads() != n:
        log.warning("seed model: the build runs on %d torch threads, not %d (an in-process sampling engine of this "
                    "process has fixed the count); the model may differ from one built on %d",
                    torch.get_num_threads(), n, n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_cached(name: str, opts: TinyBuildOptions, pairs: list[tuple[str, str]], prompt_cfg: PromptConfig, cache_dir: str | Path,
                 seed: int, stops: Callable[[Path], list[StopAtAccuracy]] | None = None,
                 tokenizer_pairs: list[tuple[str, str]] | None = None,
                 raw_pairs: list[tuple[str, str]] | None = None, words: list[str] | None = None) -> Path:
    """Train a tiny Llama (sized by ``opts``) from scratch on (problem text, completion) ``pairs`` (and on
    ``raw_pairs``: (prompt, completion) used as they are) with a character tokenizer trained on
    ``tokenizer_pairs`` (default: ``pairs``; its token ids follow character frequencies there; each of ``words``
    is one token), and cache it under a hash of ``opts``, the prompt config and ``seed``; ``stops(init_dir)``
    gives early stops. Returns the model directory (cached: no training)."""
    final = Path(cache_dir) / f"{name}-seed-{cache_key(opts, prompt_cfg, seed)}"
    if (final / "model" / "config.json").exists():
        log.info("seed model: cached at %s", final / "model")
        return final / "model"
    log.info("seed model: building %s (first use)", final)
    tok = build_char_tokenizer([text + completion for text, completion in tokenizer_pairs or pairs], words=words or ())
    spec = TinyModelSpec(hidden_size=opts.hidden_size, intermediate_size=opts.intermediate_size,
                         num_hidden_layers=opts.num_hidden_layers, num_attention_heads=opts.num_attention_heads,
                         num_key_value_heads=opts.num_attention_heads)
    init_dir = final.with_name(final.name + ".init")
    save_model(build_tiny_llama(tok, spec, seed), tok, init_dir)
    sft = [{"prompt": render_prompt(tok, text, prompt_cfg), "completion": completion} for text, completion in pairs]
    sft += [{"prompt": prompt, "completion": completion} for prompt, completion in raw_pairs or []]
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    callbacks = stops(init_dir) if stops else []
    with torch_threads(opts.threads):
        stats = train_sft(str(init_dir), sft, train_config(opts, seed), partial,
                          callbacks=[c.callback() for c in callbacks])
    if callbacks:
        stop = callbacks[0]
        stats["stopped_at_step"], stats["validation_accuracy"] = stop.stopped_at, stop.history
        if stop.stopped_at is None:
            log.warning("seed model: never reached %.1f%% on the validation chains (last checks: %s); using the "
                        "fully trained model", 100 * stop.target, stop.history[-3:])
    shutil.rmtree(partial / "trainer", ignore_errors=True)
    (partial / "seed_build.json").write_text(json.dumps({"options": asdict(opts), "seed": seed, "train": stats},
                                                        indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    shutil.rmtree(init_dir, ignore_errors=True)
    return final / "model"
