"""The ``starloop`` command line (see README for the contract)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("starloop")


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(rich_tracebacks=False, show_path=False)],
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "vllm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _env_defaults() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def cmd_run(args: argparse.Namespace) -> int:
    from starloop.loop.config import load_config
    from starloop.loop.report import print_table, write_report
    from starloop.loop.run import Loop

    overrides = list(args.set or [])
    if args.iterations is not None:
        overrides.append(f"iterations={args.iterations}")
    cfg = load_config(args.config, overrides)
    loop = Loop(cfg, args.run_dir)
    loop.run()
    report = write_report(loop.rd)
    print_table(loop.rd)
    log.info("report: %s", report)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from starloop.loop.verify_cli import verify_file

    verify_file(args.verifier, args.input, args.output, workers=args.workers, options=args.option)
    return 0


def cmd_verifiers(args: argparse.Namespace) -> int:
    from starloop.verifiers import list_verifiers

    for spec in list_verifiers():
        doc = (spec.fn.__doc__ or "").strip().splitlines()
        print(f"{spec.name:12s} v{spec.version:6s} {doc[0] if doc else ''}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from starloop.loop.report import print_table, write_report
    from starloop.loop.rundir import RunDir

    rd = RunDir(args.run_dir)
    if not rd.metrics_path.exists():
        print(f"error: {args.run_dir} has no metrics.jsonl (not a starloop run directory?)", file=sys.stderr)
        return 2
    path = write_report(rd)
    print_table(rd)
    pngs = ", ".join(p.name for p in sorted(rd.root.glob("*.png")))
    print(f"wrote {path} and {pngs}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="starloop", description="Self-improvement loop for reasoning with verifiable rewards.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the loop (no CONFIG = the embedded demo); resumes by default")
    r.add_argument("config", nargs="?", default=None, type=Path)
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--run-dir", type=Path, default=None)
    r.add_argument("--iterations", type=int, default=None)
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("verify", help="verify completions in a JSONL file")
    v.add_argument("--verifier", required=True)
    v.add_argument("--input", required=True, type=Path)
    v.add_argument("--output", required=True, type=Path)
    v.add_argument("--workers", type=int, default=1)
    v.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="verifier option")
    v.set_defaults(func=cmd_verify)

    sub.add_parser("verifiers", help="list registered verifiers").set_defaults(func=cmd_verifiers)

    rp = sub.add_parser("report", help="table + PNG plot of a run")
    rp.add_argument("run_dir", type=Path)
    rp.set_defaults(func=cmd_report)

    from starloop.loop import cli_extra

    cli_extra.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    _env_defaults()
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    from starloop.loop.config import ConfigError
    from starloop.loop.io import InputError
    from starloop.loop.rundir import RunDirMismatch

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
