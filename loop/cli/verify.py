"""``starloop verify``: verify completions in a JSONL file.

Input rows: ``completion`` plus ``answer`` (math) or ``tests`` (code); optional ``task`` (the
verifier that judges the row; ``--verifier`` names it for rows without one), ``finish_reason``,
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
from starloop.verifiers.records import Verdict
from starloop.verifiers.registry import VerifierSpec, VerifyItem, get_verifier

log = logging.getLogger("starloop")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", parents=parents, help="verify completions in a JSONL file",
                       description="Judge each row's completion with a verifier; write the rows back with a verdict.")
    p.add_argument("--verifier", default=None,
                   help="verifier for rows without a 'task' field (see `starloop verifiers`); a row's task wins")
    p.add_argument("--input", required=True, type=Path, help="JSONL rows: completion plus answer or tests")
    p.add_argument("--output", required=True, type=Path, help="JSONL file to write (input rows plus verdict)")
    p.add_argument("--workers", type=int, default=None, help="verification processes (default: verify.workers, or 1)")
    add_config_args(p, what="a verify section (verify.workers, verify.options.<verifier>)",
                    default="the verify section's defaults")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="verifier option; short for --set verify.options.<verifier>.KEY=VALUE")
    p.set_defaults(func=run)


def _groups(items: list[VerifyItem], path: Path) -> dict[str, tuple[VerifierSpec, list[int]]]:
    """Each verifier named by the rows' ``task``, with the indices of its rows; an unknown one is an
    error naming its first row."""
    groups: dict[str, tuple[VerifierSpec, list[int]]] = {}
    for i, item in enumerate(items):
        name = item.problem.task
        if name not in groups:
            try:
                groups[name] = (get_verifier(name), [])
            except KeyError as exc:
                raise InputError(f"{path} row {i + 1}: {exc.args[0]}") from None
        groups[name][1].append(i)
    return groups


def run(args: argparse.Namespace) -> int:
    if args.verifier is not None:
        try:
            get_verifier(args.verifier)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
    for kv in args.option:
        if "=" not in kv:
            raise InputError(f"--option expects KEY=VALUE, got {kv!r}")
        if args.verifier is None:
            raise InputError("--option needs --verifier (or use --set verify.options.<verifier>.KEY=VALUE)")
    overrides = [*args.set, *(f"verify.options.{args.verifier}.{kv}" for kv in args.option)]
    cfg: VerifyConfig = load_section("verify", args.config, overrides)
    workers = args.workers if args.workers is not None else (cfg.workers if args.config else 1)
    rows = read_jsonl(args.input)
    if not rows:
        raise InputError(f"{args.input}: no rows")
    items = verify_items_from_rows(rows, args.verifier, args.input)
    groups = _groups(items, args.input)
    options = {name: cfg.options.get(name, {}) for name in groups}
    for name, (spec, idxs) in groups.items():  # every row checked before any work
        try:
            spec.make_config(options[name])
        except (ValueError, TypeError) as exc:
            raise InputError(str(exc)) from None
        for i in idxs:
            try:
                spec.check([items[i].problem])
            except ValueError as exc:
                raise InputError(f"{args.input} row {i + 1}: {exc}") from None
    parts_root = Path(f"{args.output}.parts")
    source = hashlib.sha256(Path(args.input).read_bytes()).hexdigest()
    verdicts: list[Verdict] = [None] * len(items)  # type: ignore[list-item]  # each set below
    with tqdm(total=len(items), desc="verify", unit="row") as bar:
        for name, (spec, idxs) in groups.items():
            key = {"input": source, "verifier": spec.name, "version": spec.version, "options": options[name]}
            if len(groups) > 1:
                key["rows"] = idxs
            got = verify_in_chunks(name, [items[i] for i in idxs], options=options[name], workers=workers,
                                   parts=Parts(parts_root / digest(key)), bar=bar)
            for i, v in zip(idxs, got, strict=True):
                verdicts[i] = v
    counts = Counter(v.reason for v in verdicts)
    write_jsonl(args.output, (verified_row(row, v) for row, v in zip(rows, verdicts, strict=True)))
    shutil.rmtree(parts_root, ignore_errors=True)
    log.info("%d rows verified (%s): %s -> %s", len(rows), ", ".join(f"{n}: {len(i)}" for n, (_, i) in groups.items()),
             dict(counts), args.output)
    return 0
