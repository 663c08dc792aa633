"""Arguments and checks the commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from starloop.loop.config import DatasetConfig, RunConfig, load_config
from starloop.loop.errors import InputError
from starloop.loop.runtime.models import check_model, resolve_model
from starloop.loop.runtime.sampling import Sampling, isolate_phases
from starloop.loop.tasks import load_problems
from starloop.verifiers.records import Problem


def add_config_args(p: argparse.ArgumentParser, *, what: str = "the experiment config",
                    default: str = "the shipped demo config, configs/demo.yaml") -> None:
    """``--config`` and ``--set``: every command that reads a config takes both."""
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG",
                   help=f"YAML file with {what} (default: {default})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set sampling.n=8 (repeatable; YAML values)")


def load_inputs(args: argparse.Namespace, overrides: list[str]) -> tuple[RunConfig, DatasetConfig, list[Problem], str]:
    """Config, dataset config, problems and model path of a sample / eval command."""
    cfg = load_config(args.config, overrides)
    ds = cfg.data.eval if args.split == "eval" else cfg.data.train
    problems = load_problems(ds, cfg.seed)
    if not problems:
        raise InputError(f"data.{args.split}: no problems ({ds.source}, {ds.path})")
    if args.model:
        check_model(args.model, "--model")
    return cfg, ds, problems, args.model or resolve_model(cfg.model, cfg.prompt, cfg.seed)


def open_sampling(cfg: RunConfig) -> Sampling:
    """The sampler of a command: in this process, or a child per call with ``runtime.stage_processes``."""
    return Sampling(cfg.sampling, engine_seed=cfg.seed, progress=cfg.runtime.progress,
                    isolate=isolate_phases(cfg.runtime.stage_processes))
