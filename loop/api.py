"""starloop as a library: the functions ``import starloop`` exports (lazily, see the package's
``__init__``), each the Python form of a command::

    import starloop

    run_dir = starloop.run("configs/demo.yaml", overrides=["sampling.n=4"], iterations=2)  # starloop run
    result = starloop.evaluate_model(run_dir / "iter-002/train/model")                    # starloop eval
    verdicts = starloop.verify("math", items)                                              # starloop verify
    pairs, stats = starloop.build_pairs(verified_rows, strategy="hardest")                 # starloop pairs
    cfg = starloop.load_config("configs/demo.yaml", ["seed=1"])
    reward = starloop.make_reward_func("math")                                             # a TRL reward
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starloop.loop.config import DatasetConfig, RunConfig, load_config
from starloop.loop.driver import Driver
from starloop.loop.errors import InputError
from starloop.loop.runtime.models import LoadOptions, check_model, load_tokenizer, resolve_model
from starloop.loop.runtime.prompts import problem_prompts
from starloop.loop.runtime.ray_executor import executor_for
from starloop.loop.runtime.report import write_report
from starloop.loop.runtime.sampling import Sampling, isolate_phases
from starloop.loop.stages.evaluation import evaluate_model as evaluate_checkpoint
from starloop.loop.stages.pairs import pairs_from_verified_rows
from starloop.loop.tasks import load_problems
from starloop.verifiers.records import Problem

log = logging.getLogger("starloop")


def run(config: str | Path | None = None, *, overrides: Sequence[str] = (), run_dir: str | Path | None = None,
        iterations: int | None = None) -> Path:
    """Run the loop (or resume it, as ``starloop run`` does); returns the run directory, which holds
    ``metrics.jsonl`` and ``report.md``. No config: the shipped demo."""
    sets = [*overrides, *([f"iterations={iterations}"] if iterations is not None else [])]
    driver = Driver(load_config(config, sets), run_dir)
    driver.run()
    write_report(driver.rd)
    return driver.rd.root


def load_inputs(config: str | Path | None, overrides: Sequence[str], split: str,
                model: str | Path | None) -> tuple[RunConfig, DatasetConfig, list[Problem], str]:
    """Config, dataset config, problems of ``split`` and the model path of a sample / eval."""
    cfg = load_config(config, overrides)
    ds = cfg.data.eval if split == "eval" else cfg.data.train
    problems = load_problems(ds, cfg.seed)
    if not problems:
        raise InputError(f"data.{split}: no problems ({ds.source}, {ds.path})")
    if model:
        check_model(str(model), "--model")
    return cfg, ds, problems, str(model) if model else resolve_model(cfg.model, cfg.prompt, cfg.seed)


def open_sampling(cfg: RunConfig) -> Sampling:
    """The sampler of a command: in this process, or a child per call with ``runtime.stage_processes``; on a
    server, ``model.path`` is sampled as ``sampling.served_model``."""
    served = cfg.sampling.served_model
    return Sampling(cfg.sampling, engine_seed=cfg.seed, progress=cfg.runtime.progress,
                    isolate=isolate_phases(cfg.runtime.stage_processes), load=LoadOptions.of(cfg.model),
                    executor=executor_for(cfg.runtime),
                    aliases={resolve_model(cfg.model, cfg.prompt, cfg.seed): served} if served else None)


def prompt_tokenizer(cfg: RunConfig, model: str):
    """The tokenizer that renders ``model``'s prompts: its own, or ``model.path``'s for a model that only a
    server knows (``sampling.backend: openai`` and a served name)."""
    if cfg.sampling.backend == "openai" and not Path(model).is_dir():
        model = resolve_model(cfg.model, cfg.prompt, cfg.seed)
    return load_tokenizer(model, LoadOptions.of(cfg.model))


def evaluate_model(model: str | Path | None = None, *, config: str | Path | None = None,
                   overrides: Sequence[str] = (), split: str = "eval", samples_dir: str | Path | None = None,
                   seed: int | None = None) -> dict[str, Any]:
    """Greedy pass@1, sampled pass@k and maj@k of ``model`` (default: the config's) on the config's
    held-out problems, as ``starloop eval`` reports them."""
    cfg, ds, problems, model = load_inputs(config, overrides, split, model)
    log.info("evaluating %s on %d %s problems (%s %s)", model, len(problems), split, ds.source, ds.path or "")
    prompts = problem_prompts(prompt_tokenizer(cfg, model), problems, cfg.prompt)
    with open_sampling(cfg) as sampling:
        metrics = evaluate_checkpoint(sampling, model, problems, prompts, eval_cfg=cfg.eval, sampling_cfg=cfg.sampling,
                                      verify_cfg=cfg.verify, out=samples_dir, seed=cfg.seed if seed is None else seed,
                                      progress=cfg.runtime.progress)
    return {
        "model": model,
        "config": str(config) if config else "configs/demo.yaml",
        "split": split,
        "dataset": {"source": ds.source, "path": ds.path, "split": ds.split, "limit": ds.limit},
        "eval": {"n": cfg.eval.n, "k": cfg.eval.k, "temperature": cfg.eval.temperature, "greedy": cfg.eval.greedy,
                 "max_tokens": cfg.eval.max_tokens or cfg.sampling.max_tokens},
        **metrics,
    }


def build_pairs(verified_rows: Sequence[dict[str, Any]], *, strategy: str = "random", per_prompt: int = 2,
                exclude_truncated: bool = True, seed: int = 0, verifier: str | None = None,
                cut_rejected: str = "none") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO preference rows (TRL's format plus provenance) and their counts from verified rows (what
    ``starloop verify`` writes), as ``starloop pairs`` builds them."""
    return pairs_from_verified_rows(list(verified_rows), "verified rows", verifier=verifier, strategy=strategy,
                                    per_prompt=per_prompt, exclude_truncated=exclude_truncated, seed=seed,
                                    cut_rejected=cut_rejected)
