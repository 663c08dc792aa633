"""``starloop pairs``: a DPO preference dataset from verified completions (``starloop verify`` output,
or a run's ``iter-NNN/verify/verified.jsonl``) in TRL's preference format: ``pairs.parquet`` and a
dataset card ``README.md`` (``datasets.load_dataset(DIR)``; ``--push-to-hub REPO`` uploads these two
with ``huggingface_hub``), ``save_to_disk`` files (``datasets.load_from_disk(DIR)["train"]``),
``pairs.jsonl`` and ``stats.json``, written into a temporary folder renamed into place at the end.

Pairing settings come from the config's ``pairs`` section (``--config``, ``--set pairs.KEY=VALUE``);
``--strategy``, ``--per-prompt`` and ``--include-truncated`` override them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from starloop.loop.cli.common import add_config_args
from starloop.loop.config import PairsConfig, load_section
from starloop.loop.errors import InputError
from starloop.loop.fileio import atomic_dir, read_jsonl
from starloop.loop.runtime.preference_dataset import HUB_FILES, push_to_hub, write_dataset
from starloop.loop.stages.pairs import STRATEGIES, no_pairs_message, pairs_from_verified_rows


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pairs", parents=parents, help="DPO preference dataset (TRL format) from verified completions",
                       description="Pair verified-correct with failed completions of the same prompt.")
    p.add_argument("--input", required=True, type=Path, help="verified JSONL (`starloop verify` output or verified.jsonl)")
    p.add_argument("--output", required=True, type=Path, help="dataset folder to create")
    add_config_args(p, what="a pairs section (pairs.strategy, pairs.per_prompt, pairs.exclude_truncated, pairs.cut_rejected)",
                    default="the pairs section's defaults")
    p.add_argument("--strategy", choices=STRATEGIES, default=None, help="pairing strategy (default: pairs.strategy)")
    p.add_argument("--per-prompt", type=int, default=None, help="at most this many pairs per prompt "
                                                                  "(default: pairs.per_prompt)")
    p.add_argument("--include-truncated", action="store_true", default=None,
                   help="allow truncated completions as rejected (default: pairs.exclude_truncated)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairing order")
    p.add_argument("--verifier", default=None, help="verifier name recorded as provenance when verdicts name none")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--push-to-hub", metavar="REPO", default=None, help="also push the dataset to this Hub repo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg: PairsConfig = load_section("pairs", args.config, args.set)
    strategy = args.strategy or cfg.strategy
    per_prompt = cfg.per_prompt if args.per_prompt is None else args.per_prompt
    exclude_truncated = cfg.exclude_truncated if args.include_truncated is None else not args.include_truncated
    if per_prompt < 1:
        raise InputError(f"--per-prompt must be >= 1, got {per_prompt}")
    rows, stats = pairs_from_verified_rows(read_jsonl(args.input), args.input, verifier=args.verifier,
                                           strategy=strategy, per_prompt=per_prompt,
                                           exclude_truncated=exclude_truncated, seed=args.seed,
                                           cut_rejected=cfg.cut_rejected)
    if not rows:
        raise InputError(f"{args.input}: {no_pairs_message(stats)}")
    meta = {"input": str(args.input), "strategy": strategy, "per_prompt": per_prompt,
            "include_truncated": not exclude_truncated, "seed": args.seed, "cut_rejected": cfg.cut_rejected}
    with atomic_dir(args.output, args.overwrite) as tmp:
        write_dataset(rows, stats, tmp, meta)
    print(f"{stats['pairs']} pairs from {stats['prompts_with_pairs']} of {stats['prompts']} prompts "
          f"({strategy}, <= {per_prompt} per prompt) -> {args.output}")
    if args.push_to_hub:
        print(f"pushed {', '.join(HUB_FILES)} to the Hub: {push_to_hub(args.output, args.push_to_hub)}")
    return 0
