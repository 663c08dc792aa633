"""``starloop verify``: verify completions in a JSONL file.

Input rows: ``completion`` plus ``answer`` (math) or ``tests`` (code); optional ``finish_reason``,
``id`` / ``problem_id``, ``prompt``, and the code verifier's ``entry_point`` / ``stub`` / ``imports``;
every other field passes through. Output rows: the input
row plus ``verdict``. Unusable input (bad JSON, a missing or non-string field) is refused
before any work, with the row number; the output is written atomically.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from starloop.loop.io import InputError, read_jsonl, write_jsonl
from starloop.verifiers.registry import VerifyItem, get_verifier, verify_batch
from starloop.verifiers.types import Problem

log = logging.getLogger(__name__)

# Row fields that verifiers read from Problem.meta (code: HumanEval entry point, stub, imports).
META_FIELDS = ("entry_point", "stub", "imports", "level")


def _parse_options(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise InputError(f"--option expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def rows_to_items(rows: list[dict], verifier: str, path: Path) -> list[VerifyItem]:
    items = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        comp = row.get("completion")
        if comp is None:
            raise InputError(f"{where}: missing field 'completion'")
        if isinstance(comp, list):  # conversational: the last assistant message
            comp = next((m.get("content", "") for m in reversed(comp) if m.get("role") == "assistant"), None)
        if not isinstance(comp, str):
            raise InputError(f"{where}: 'completion' must be a string, got {type(row.get('completion')).__name__}")
        answer, tests = row.get("answer"), row.get("tests")
        if answer is None and tests is None:
            raise InputError(f"{where}: needs 'answer' (math) or 'tests' (code)")
        if answer is not None and not isinstance(answer, str | int | float):
            raise InputError(f"{where}: 'answer' must be a string or number, got {type(answer).__name__}")
        fr = row.get("finish_reason")
        problem = Problem(
            id=str(row.get("problem_id", row.get("id", i))),
            task=verifier,
            prompt=str(row.get("prompt", "")),
            answer=None if answer is None else str(answer),
            tests=tests,
            meta={k: row[k] for k in META_FIELDS if k in row},
        )
        items.append(VerifyItem(comp, problem, fr if isinstance(fr, str) else None))
    return items


def verify_file(verifier: str, inp: Path, out: Path, *, workers: int = 1, options: list[str] = ()) -> Counter:
    from tqdm.auto import tqdm

    try:
        spec = get_verifier(verifier)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
    opts = _parse_options(list(options))
    try:
        spec.make_config(opts)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None
    rows = read_jsonl(inp)
    if not rows:
        raise InputError(f"{inp}: no rows")
    items = rows_to_items(rows, verifier, inp)
    verdicts = []
    chunk = 256
    with tqdm(total=len(items), desc=f"verify ({verifier})", unit="row") as bar:
        for s in range(0, len(items), chunk):
            verdicts += verify_batch(verifier, items[s : s + chunk], options=opts, workers=workers)
            bar.update(len(items[s : s + chunk]))
    counts = Counter(v.reason for v in verdicts)
    write_jsonl(out, ({**row, "verdict": v.to_dict()} for row, v in zip(rows, verdicts, strict=True)))
    log.info("%d rows verified: %s -> %s", len(rows), dict(counts), out)
    return counts
