"""``starloop verify``: verify completions in a JSONL file.

Input rows: ``completion`` plus ``answer`` (math) or ``tests`` (code); optional ``finish_reason``,
``id`` / ``problem_id``, ``prompt``, and the code verifier's ``entry_point`` / ``stub`` / ``imports``;
every other field passes through. Output rows: the input row plus ``verdict`` (with the name and
version of the verifier that made it). Unusable input (bad JSON, a missing or non-string field)
is refused before any work, with the row number. Verdicts are kept as they are made (in
``OUTPUT.parts/``), so a run that fails or is interrupted late loses nothing: the same command
resumes; the output itself is written atomically at the end.

Options: ``verify.options.<verifier>`` and ``verify.workers`` of ``--config`` and ``--set``;
``--option KEY=VALUE`` is short for ``--set verify.options.<verifier>.KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from starloop.loop.cli.common import add_config_args
from starloop.loop.config import VerifyConfig, load_section
from starloop.loop.errors import InputError
from starloop.loop.fileio import read_jsonl, write_jsonl
from starloop.loop.records import verified_row, verify_items_from_rows
from starloop.loop.runtime.rundir import Parts, digest
from starloop.loop.stages.verify import verify_in_chunks
from starloop.verifiers.registry import get_verifier

log = logging.getLogger("starloop")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", parents=parents, help="verify completions in a JSONL file",
                       description="Judge each row's completion with a verifier; write the rows back with a verdict.")
    p.add_argument("--verifier", required=True, help="verifier name (see `starloop verifiers`)")
    p.add_argument("--input", required=True, type=Path, help="JSONL rows: completion plus answer or tests")
    p.add_argument("--output", required=True, type=Path, help="JSONL file to write (input rows plus verdict)")
    p.add_argument("--workers", type=int, default=None, help="verification processes (default: verify.workers, or 1)")
    add_config_args(p, what="a verify section (verify.workers, verify.options.<verifier>)",
                    default="the verify section's defaults")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="verifier option; short for --set verify.options.<verifier>.KEY=VALUE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        spec = get_verifier(args.verifier)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
    for kv in args.option:
        if "=" not in kv:
            raise InputError(f"--option expects KEY=VALUE, got {kv!r}")
    overrides = [*args.set, *(f"verify.options.{args.verifier}.{kv}" for kv in args.option)]
    cfg: VerifyConfig = load_section("verify", args.config, overrides)
    options = cfg.options.get(args.verifier, {})
    try:
        spec.make_config(options)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None
    workers = args.workers if args.workers is not None else (cfg.workers if args.config else 1)
    rows = read_jsonl(args.input)
    if not rows:
        raise InputError(f"{args.input}: no rows")
    items = verify_items_from_rows(rows, args.verifier, args.input)
    for i, item in enumerate(items, 1):
        try:
            spec.check([item.problem])
        except ValueError as exc:
            raise InputError(f"{args.input} row {i}: {exc}") from None
    parts_root = Path(f"{args.output}.parts")
    key = {"input": hashlib.sha256(Path(args.input).read_bytes()).hexdigest(), "verifier": spec.name,
           "version": spec.version, "options": options}
    parts = Parts(parts_root / digest(key))
    with tqdm(total=len(items), desc=f"verify ({args.verifier})", unit="row") as bar:
        verdicts = verify_in_chunks(args.verifier, items, options=options, workers=workers, parts=parts, bar=bar)
    counts = Counter(v.reason for v in verdicts)
    write_jsonl(args.output, (verified_row(row, v) for row, v in zip(rows, verdicts, strict=True)))
    shutil.rmtree(parts_root, ignore_errors=True)
    log.info("%d rows verified: %s -> %s", len(rows), dict(counts), args.output)
    return 0
