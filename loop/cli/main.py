"""The ``starloop`` command line: one parser; each command lives in its own module of this package.

    starloop run [CONFIG] [--config CONFIG] [--set key=value ...] [--run-dir DIR] [--iterations N]
    starloop sample | eval | verify | pairs | train | report | verifiers   (see README)

Exit status: 0 on success; 2 for unusable input or config (one line naming the file, row, field
or key); 130 when interrupted (finished stages are kept).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from rich.logging import RichHandler

from starloop.loop.cli import evaluate, pairs, report, run, sample, train, verifiers, verify
from starloop.loop.config import ConfigError
from starloop.loop.errors import InputError
from starloop.loop.runtime.rundir import RunDirMismatch

COMMANDS = (run, sample, verify, pairs, train, evaluate, report, verifiers)


def _version() -> str:
    try:
        return version("starloop")
    except PackageNotFoundError:
        return "unknown"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", datefmt="%H:%M:%S",
                        handlers=[RichHandler(rich_tracebacks=False, show_path=False)])
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "vllm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _env_defaults() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="starloop",
                                description="Self-improvement loop for reasoning with verifiable rewards.")
    p.add_argument("--version", action="version", version=f"starloop {_version()}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # -v also after the command: `starloop run -v` (SUPPRESS keeps a -v given before the command).
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, [verbose])
    return p


def main(argv: list[str] | None = None) -> int:
    _env_defaults()
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ConfigError, InputError, RunDirMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
