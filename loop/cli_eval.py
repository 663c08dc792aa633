"""``starloop`` subcommands: sample, eval.

``starloop eval`` evaluates one checkpoint on a config's held-out problems (``--split eval``, the
default) or its train pool, exactly as the loop's evaluate stage does (same prompts, same code):
greedy pass@1, sampled pass@k and maj@k for ``eval.k``, broken down per task, per level and per
verdict reason; prints a table and writes the metrics as JSON.

``starloop sample`` samples ``sampling.n`` completions per problem and writes them in the Sample
JSONL format, each row with the problem's ``task``, ``answer`` / ``tests`` and, for code problems,
``entry_point`` / ``imports``, so ``starloop verify`` reads it directly.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("starloop")


def _load(args: argparse.Namespace):
    """Config, dataset config, problems and model path for ``args``."""
    from starloop.loop.config import load_config
    from starloop.loop.io import InputError
    from starloop.loop.run import resolve_model
    from starloop.loop.tasks import load_problems

    overrides = list(args.set or [])
    if getattr(args, "n", None) is not None:
        overrides.append(f"sampling.n={args.n}")
    cfg = load_config(args.config, overrides)
    ds = cfg.data.eval if args.split == "eval" else cfg.data.train
    problems = load_problems(ds, cfg.seed)
    if not problems:
        raise InputError(f"data.{args.split}: no problems ({ds.source}, {ds.path})")
    if args.model:
        local = Path(args.model).expanduser()
        if local.exists() and not (local / "config.json").exists():
            raise InputError(f"--model {args.model}: not a Hugging Face model directory (no config.json)")
        if not local.exists() and args.model.startswith(("/", "./", "../", "~")):
            raise InputError(f"--model {args.model}: no such directory")
    return cfg, ds, problems, args.model or resolve_model(cfg)


def cmd_eval(args: argparse.Namespace) -> int:
    from starloop.loop.evaluate import evaluate_model
    from starloop.loop.io import write_json
    from starloop.loop.sample import release_sampler

    cfg, ds, problems, model = _load(args)
    log.info("evaluating %s on %d %s problems (%s %s)", model, len(problems), args.split, ds.source, ds.path or "")
    try:
        metrics = evaluate_model(
            model, problems, prompt_cfg=cfg.prompt, sampling_cfg=cfg.sampling, eval_cfg=cfg.eval,
            verify_cfg=cfg.verify, out=args.samples_dir, seed=cfg.seed if args.seed is None else args.seed,
            engine_seed=cfg.seed, progress=cfg.runtime.progress,
        )
    finally:
        release_sampler()
    result = {
        "model": model,
        "config": str(args.config) if args.config else "configs/demo.yaml",
        "split": args.split,
        "dataset": {"source": ds.source, "path": ds.path, "split": ds.split, "limit": ds.limit},
        "eval": {"n": cfg.eval.n, "k": cfg.eval.k, "temperature": cfg.eval.temperature, "greedy": cfg.eval.greedy,
                 "max_tokens": cfg.eval.max_tokens or cfg.sampling.max_tokens},
        **metrics,
    }
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


def print_eval(result: dict[str, Any], console=None) -> None:
    """Print an evaluation result as tables: accuracy (overall, per task, per level), verdict reasons."""
    from rich.console import Console
    from rich.table import Table

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


def cmd_sample(args: argparse.Namespace) -> int:
    from starloop.loop.evaluate import generate_samples
    from starloop.loop.io import write_jsonl
    from starloop.loop.prompts import problem_prompts
    from starloop.loop.run import load_tokenizer
    from starloop.loop.sample import GenParams, release_sampler

    cfg, ds, problems, model = _load(args)
    s = cfg.sampling
    prompts = problem_prompts(load_tokenizer(model), problems, cfg.prompt)
    params = GenParams(s.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=cfg.seed)
    log.info("sampling %d x %d completions from %s (%s %s)", len(problems), s.n, model, ds.source, ds.path or "")
    try:
        samples = generate_samples(model, problems, prompts, params, sampling=s, engine_seed=cfg.seed,
                                   iteration=0, progress=cfg.runtime.progress)
    finally:
        release_sampler()
    by_id = {p.id: p for p in problems}
    rows = []
    for x in samples:
        p = by_id[x.problem_id]
        row = {**x.to_dict(), "task": p.task}
        row.pop("verdict")
        if p.answer is not None:
            row["answer"] = p.answer
        if p.tests is not None:
            row["tests"] = p.tests
        row.update({k: p.meta[k] for k in ("entry_point", "imports") if p.meta.get(k)})
        rows.append(row)
    n = write_jsonl(args.output, rows)
    print(f"wrote {n} samples ({len(problems)} problems x {s.n}) to {args.output}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this module's subcommands on ``sub``."""
    e = sub.add_parser("eval", help="evaluate a model on a config's held-out problems (pass@1, pass@k, maj@k)")
    e.add_argument("--model", default=None, help="model directory or Hub id (default: the config's model.path)")
    e.add_argument("--config", type=Path, default=None, help="experiment YAML (default: the embedded demo)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    e.add_argument("--split", choices=["eval", "train"], default="eval", help="data.eval (default) or data.train")
    e.add_argument("--output", type=Path, default=None, help="write the metrics as JSON here")
    e.add_argument("--samples-dir", type=Path, default=None, help="write greedy.jsonl / sampled.jsonl here")
    e.add_argument("--seed", type=int, default=None, help="sampling seed (default: the config's seed)")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="sample completions for a config's problems (Sample JSONL, for `verify`)")
    s.add_argument("--config", type=Path, default=None, help="experiment YAML (default: the embedded demo)")
    s.add_argument("--model", default=None, help="model directory or Hub id (default: the config's model.path)")
    s.add_argument("--output", type=Path, required=True)
    s.add_argument("--split", choices=["train", "eval"], default="train")
    s.add_argument("--n", type=int, default=None, help="completions per problem (default: sampling.n)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    s.set_defaults(func=cmd_sample)
