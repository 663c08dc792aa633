"""``starloop run``: the loop (no CONFIG = the shipped demo); resumes by default."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from starloop.loop.cli.common import add_config_args
from starloop.loop.config import ConfigError, load_config
from starloop.loop.driver import Driver
from starloop.loop.runtime.report import print_table, write_report

log = logging.getLogger("starloop")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", parents=parents, help="run the loop (no CONFIG = the shipped demo); resumes by default",
                       description="Run the self-improvement loop; rerunning the same command resumes it.")
    p.add_argument("positional_config", nargs="?", type=Path, default=None, metavar="CONFIG",
                   help="experiment YAML (same as --config; default: the shipped demo, configs/demo.yaml)")
    add_config_args(p)
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run directory (default: <runs_dir>/<name> from the config)")
    p.add_argument("--iterations", type=int, default=None, help="number of iterations (overrides the config's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.positional_config is not None and args.config is not None:
        raise ConfigError("give the config once: as CONFIG or as --config")
    overrides = list(args.set)
    if args.iterations is not None:
        overrides.append(f"iterations={args.iterations}")
    driver = Driver(load_config(args.config or args.positional_config, overrides), args.run_dir)
    driver.run()
    report = write_report(driver.rd)
    print_table(driver.rd)
    log.info("report: %s", report)
    return 0
