"""``starloop sample``: ``sampling.n`` completions per problem of a config's data, written in the Sample
JSONL format, each row with the problem's ``task``, ``answer`` / ``tests`` and, for code problems,
``entry_point`` / ``imports``, so ``starloop verify`` reads it directly."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from starloop.loop.api import load_inputs, open_sampling, prompt_tokenizer
from starloop.loop.cli.common import add_config_args
from starloop.loop.fileio import write_jsonl
from starloop.loop.records import GenParams, SampleRequest, sample_output_row
from starloop.loop.runtime.prompts import problem_prompts

log = logging.getLogger("starloop")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sample", parents=parents, help="sample completions for a config's problems (for `verify`)",
                       description="Sample completions for a config's problems, in the format `starloop verify` "
                                   "reads.")
    add_config_args(p)
    p.add_argument("--model", default=None, help="model directory or Hub id (default: the config's model.path); with "
                        "sampling.backend=openai, the name the server serves, or a checkpoint whose LoRA adapter "
                        "it loads")
    p.add_argument("--output", type=Path, required=True, help="JSONL file to write")
    p.add_argument("--split", choices=["train", "eval"], default="train", help="data.train (default) or data.eval")
    p.add_argument("--n", type=int, default=None, help="completions per problem (default: sampling.n)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.set) + ([f"sampling.n={args.n}"] if args.n is not None else [])
    cfg, ds, problems, model = load_inputs(args.config, overrides, args.split, args.model)
    s = cfg.sampling
    prompts = problem_prompts(prompt_tokenizer(cfg, model), problems, cfg.prompt)
    params = GenParams(s.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=cfg.seed)
    log.info("sampling %d x %d completions from %s (%s %s)", len(problems), s.n, model, ds.source, ds.path or "")
    with open_sampling(cfg) as sampling:
        samples = sampling.sample(SampleRequest(model, problems, prompts, params, iteration=0))
    by_id = {p.id: p for p in problems}
    n = write_jsonl(args.output, (sample_output_row(x, by_id[x.problem_id]) for x in samples))
    print(f"wrote {n} samples ({len(problems)} problems x {s.n}) to {args.output}")
    return 0
