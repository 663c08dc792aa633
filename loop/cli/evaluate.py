"""``starloop eval``: evaluate one checkpoint on a config's held-out problems (``--split eval``, the
default) or its train pool, exactly as the loop's evaluate stage does (same prompts, same code):
greedy pass@1, sampled pass@k and maj@k for ``eval.k``, broken down per task, per level and per
verdict reason; prints a table and writes the metrics as JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from starloop.loop.api import evaluate_model
from starloop.loop.cli.common import add_config_args
from starloop.loop.fileio import write_json


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", parents=parents, help="evaluate a model on a config's held-out problems",
                       description="Greedy pass@1, sampled pass@k and maj@k of a model, as the loop's evaluate "
                                   "stage computes them.")
    p.add_argument("--model", default=None, help="model directory or Hub id (default: the config's model.path); with "
                        "sampling.backend=openai, the name the server serves, or a checkpoint whose LoRA adapter "
                        "it loads")
    add_config_args(p)
    p.add_argument("--split", choices=["eval", "train"], default="eval", help="data.eval (default) or data.train")
    p.add_argument("--output", type=Path, default=None, help="write the metrics as JSON here")
    p.add_argument("--samples-dir", type=Path, default=None, help="write greedy.jsonl / sampled.jsonl here")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the config's seed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = evaluate_model(args.model, config=args.config, overrides=list(args.set), split=args.split,
                            samples_dir=args.samples_dir, seed=args.seed)
    print_eval(result)
    if args.output:
        write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0


def _block_row(name: str, b: dict[str, Any], ks: list[str]) -> list[str]:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    return [name, str(b.get("problems", "-")), f(b.get("pass@1")), *[f(b.get("pass@k", {}).get(k)) for k in ks],
            *[f(b.get("maj@k", {}).get(k)) for k in ks]]


def print_eval(result: dict[str, Any], console: Console | None = None) -> None:
    """Print an evaluation result as tables: accuracy (overall, per task, per level), verdict reasons."""
    console = console or Console(width=max(120, Console().width))
    ks = sorted(result.get("pass@k", {}), key=int)
    blocks = [("all", result)]
    blocks += [(f"task {t}", b) for t, b in sorted((result.get("per_task") or {}).items())]
    blocks += [(f"level {lv}", b) for lv, b in (result.get("per_level") or {}).items()]
    t = Table(title=f"{result.get('model')} on {result.get('split')} ({result.get('dataset', {}).get('source')})")
    for h in ["", "problems", "pass@1 (greedy)", *[f"pass@{k}" for k in ks], *[f"maj@{k}" for k in ks]]:
        t.add_column(h, justify="right")
    for name, b in blocks:
        t.add_row(*_block_row(name, b, ks))
    console.print(t)
    reasons = sorted({r for _, b in blocks for r in b.get("reasons", {})})
    if reasons:
        rt = Table(title="verdict reasons (share of samples)")
        for h in ["", *reasons]:
            rt.add_column(h, justify="right")
        for name, b in blocks:
            rt.add_row(name, *[f"{b.get('reasons', {}).get(r, 0.0):.3f}" for r in reasons])
        console.print(rt)
