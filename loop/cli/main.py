"""The ``starloop`` command line: one parser; each command lives in its own module of this package.

    starloop run [CONFIG] [--config CONFIG] [--set key=value ...] [--run-dir DIR] [--iterations N]
    starloop sample | eval | verify | pairs | train | report | verifiers   (see README)

Exit status (each with a one-line message on stderr, never a traceback for these):

    0    success
    1    a failure of the work itself (a child process, a replica), with its log
    2    unusable input or config: the message names the key, or the file, row and field
    3    the run directory is in use by another run: the message names its pid and host
    4    no space left on the device: the message names the path; rerun once space is free
    130  interrupted (SIGINT), 143 terminated (SIGTERM): finished stages are kept
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from rich.logging import RichHandler

from starloop import __version__
from starloop.loop.cli import evaluate, pairs, report, run, sample, train, verifiers, verify
from starloop.loop.config import ConfigError
from starloop.loop.errors import (
    DiskFull,
    InputError,
    Terminated,
    forget_signals,
    is_disk_full,
    on_signal,
    raise_if_signalled,
    signalled,
)
from starloop.loop.runtime.lock import RunDirLocked
from starloop.loop.runtime.processes import ChildFailed
from starloop.loop.runtime.rundir import RunDirMismatch
from starloop.loop.runtime.served import ServerFailed
from starloop.loop.runtime.shards import ShardError

COMMANDS = (run, sample, verify, pairs, train, evaluate, report, verifiers)
EXIT_FAILED, EXIT_INPUT, EXIT_LOCKED, EXIT_DISK_FULL, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 4, 130, 143
INTERRUPTED = "interrupted; finished stages are kept, rerun the same command to resume"


def _setup_logging(verbose: bool) -> None:
    if sys.stdout.isatty():
        handler: logging.Handler = RichHandler(rich_tracebacks=False, show_path=False)
    else:  # a pipe or a file: one plain line per record (rich would wrap them at 80 columns)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", datefmt="%H:%M:%S",
                        handlers=[handler])
    for noisy in ("httpx", "httpx2", "urllib3", "filelock", "datasets", "vllm"):  # httpx2: the openai client's
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _env_defaults() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # OpenMP threads (torch's, vLLM's CPU engine's) that wait for work sleep instead of spinning: on a CPU machine
    # a spinning pool takes the cores the sandbox's processes and the engine's scheduler need (the code demo's
    # iterations take about a sixth less time). Read once, when torch loads: set here, before anything imports it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="starloop",
                                description="Self-improvement loop for reasoning with verifiable rewards.")
    p.add_argument("--version", action="version", version=f"starloop {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # -v also after the command: `starloop run -v` (SUPPRESS keeps a -v given before the command).
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, [verbose])
    return p


def _fail(message: object, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _interrupted(signum: int) -> int:
    if signum == signal.SIGTERM:
        print(f"terminated (SIGTERM): {INTERRUPTED}", file=sys.stderr)
        return EXIT_TERMINATED
    print(INTERRUPTED, file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    _env_defaults()
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    forget_signals()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = args.func(args)
        raise_if_signalled()  # a signal swallowed where it was raised still ends as an interruption
        return code
    except (ConfigError, InputError, RunDirMismatch) as exc:
        return _fail(exc, EXIT_INPUT)
    except RunDirLocked as exc:
        return _fail(exc, EXIT_LOCKED)
    except DiskFull as exc:
        return _fail(exc, EXIT_DISK_FULL)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except Terminated:
        return _interrupted(signal.SIGTERM)
    except Exception as exc:
        if signalled():  # raised while unwinding the interruption (a child or a server killed on the way out)
            return _interrupted(signalled())
        if isinstance(exc, ChildFailed | ShardError | ServerFailed):
            return _fail(exc, EXIT_FAILED)
        if isinstance(exc, OSError) and is_disk_full(exc):
            return _fail(DiskFull(exc.filename or "the output"), EXIT_DISK_FULL)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
