"""``starloop`` subcommands: pairs, train.

``starloop pairs`` turns verified completions (``starloop verify`` output, or a run's
``iter-NNN/verify/verified.jsonl``) into a DPO preference dataset folder: ``save_to_disk`` files
(``datasets.load_from_disk(DIR)`` gives TRL's preference format), ``pairs.jsonl``,
``pairs.parquet``, ``stats.json`` and a dataset card ``README.md``.

``starloop train`` runs SFT or DPO on its own from such a dataset (JSONL, Parquet or a
``save_to_disk`` folder), with the ``train`` section of a config and the configured launcher.

Both write into a temporary folder next to the output and rename it into place at the end, so
a failure never leaves a half-written output behind.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starloop.loop.io import InputError

log = logging.getLogger("starloop")


@contextlib.contextmanager
def atomic_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh folder next to ``out``; on success it replaces ``out``, on failure it is removed."""
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------- pairs


def _completion_text(value: Any) -> Any:
    if isinstance(value, list):  # conversational: the last assistant message
        return next((m.get("content") for m in reversed(value) if isinstance(m, dict) and m.get("role") == "assistant"),
                    None)
    return value


def _opt(row: dict[str, Any], key: str, cast: type, where: str) -> Any:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key!r} must be {cast.__name__}, got {value!r}") from None


def rows_to_candidates(rows: list[dict[str, Any]], path: Path, verifier: str | None = None) -> list:
    """Candidates for pairing from verified rows; a clear error for unusable input."""
    from starloop.loop.pairs import Candidate
    from starloop.verifiers.registry import get_verifier
    from starloop.verifiers.types import Verdict

    if not rows:
        raise InputError(f"{path}: no rows")
    if not any("verdict" in r for r in rows):
        raise InputError(f"{path}: no row has a 'verdict'; run `starloop verify` on it first")
    with_prompt = ["prompt" in r for r in rows]
    if any(with_prompt) and not all(with_prompt):
        i = with_prompt.index(False) + 1
        raise InputError(f"{path} row {i}: missing field 'prompt' (other rows have one; the prompt groups the pairs)")
    if not any(with_prompt):
        log.warning("%s: rows have no 'prompt': completions are grouped by problem id and pairs get an empty prompt",
                    path)
    versions: dict[str, str | None] = {}
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        comp = _completion_text(row.get("completion"))
        if "completion" not in row:
            raise InputError(f"{where}: missing field 'completion'")
        if not isinstance(comp, str):
            raise InputError(f"{where}: 'completion' must be a string, got {type(row['completion']).__name__}")
        if "verdict" not in row:
            raise InputError(f"{where}: missing field 'verdict'")
        try:
            verdict = Verdict.from_dict(row["verdict"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{where}: unusable 'verdict' {row['verdict']!r} ({exc})") from None
        prompt = row.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"{where}: 'prompt' must be a string (the rendered prompt; apply the chat template "
                             f"first), got {type(prompt).__name__}")
        pid = row.get("problem_id", row.get("id"))
        if pid is None and prompt is None:
            raise InputError(f"{where}: needs 'prompt' or 'problem_id' / 'id' to group completions")
        name = row.get("verifier") or row.get("task") or verifier
        if name is not None and name not in versions:
            try:
                versions[name] = get_verifier(name).version
            except KeyError:
                versions[name] = None
        fr = row.get("finish_reason")
        out.append(Candidate(
            prompt=prompt, problem_id="" if pid is None else str(pid), completion=comp, verdict=verdict,
            finish_reason=fr if isinstance(fr, str) else None, iteration=_opt(row, "iteration", int, where),
            model=_opt(row, "model", str, where), temperature=_opt(row, "temperature", float, where),
            seed=_opt(row, "seed", int, where), verifier=name,
            verifier_version=row.get("verifier_version") or (versions.get(name) if name else None),
        ))
    return out


def cmd_pairs(args: argparse.Namespace) -> int:
    from starloop.loop.io import read_jsonl
    from starloop.loop.pairs import build_pairs, no_pairs_message, write_dataset

    if args.per_prompt < 1:
        raise InputError(f"--per-prompt must be >= 1, got {args.per_prompt}")
    cands = rows_to_candidates(read_jsonl(args.input), args.input, args.verifier)
    rows, stats = build_pairs(cands, strategy=args.strategy, per_prompt=args.per_prompt,
                              exclude_truncated=not args.include_truncated, seed=args.seed)
    if not rows:
        raise InputError(f"{args.input}: {no_pairs_message(stats)}")
    meta = {"input": str(args.input), "strategy": args.strategy, "per_prompt": args.per_prompt,
            "include_truncated": args.include_truncated, "seed": args.seed}
    with atomic_dir(args.output, args.overwrite) as tmp:
        write_dataset(rows, stats, tmp, meta)
    print(f"{stats['pairs']} pairs from {stats['prompts_with_pairs']} of {stats['prompts']} prompts "
          f"({args.strategy}, <= {args.per_prompt} per prompt) -> {args.output}")
    if args.push_to_hub:
        import datasets

        datasets.load_from_disk(str(args.output)).push_to_hub(args.push_to_hub)
        print(f"pushed to the Hub: {args.push_to_hub}")
    return 0


# ---------------------------------------------------------------------------------------------- train

_REQUIRED = {"dpo": ("prompt", "chosen", "rejected")}


def load_train_rows(path: Path, kind: str) -> list[dict[str, Any]]:
    """Training rows from JSONL, Parquet or a ``save_to_disk`` folder, checked for ``kind``."""
    from starloop.loop.io import read_jsonl

    path = Path(path)
    if path.is_dir():
        import datasets

        if not ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            raise InputError(f"{path}: not a datasets save_to_disk folder (no dataset_info.json)")
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise InputError(f"{path}: a DatasetDict without a 'train' split (splits: {sorted(ds)})")
            ds = ds["train"]
        rows = ds.to_list()
    elif path.suffix in (".jsonl", ".json"):
        rows = read_jsonl(path)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif not path.exists():
        raise InputError(f"input not found: {path}")
    else:
        raise InputError(f"{path}: unsupported data file; use .jsonl, .parquet or a save_to_disk folder")
    if not rows:
        raise InputError(f"{path}: no rows")
    return [_check_row(r, kind, f"{path} row {i}") for i, r in enumerate(rows, 1)]


def _check_row(row: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    if kind == "sft":
        if "prompt" not in row and "messages" in row:
            msgs = row["messages"]
            ok = isinstance(msgs, list) and len(msgs) >= 2 and all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs)
            if not ok or msgs[-1].get("role") != "assistant":
                raise InputError(f"{where}: 'messages' must be a list of {{role, content}} messages ending with an "
                                 f"assistant message")
            return {"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}
        fields = ("prompt", "completion")
    else:
        fields = _REQUIRED[kind]
    missing = [f for f in fields if f not in row]
    if missing:
        need = "prompt/completion (or messages)" if kind == "sft" else "prompt/chosen/rejected"
        raise InputError(f"{where}: missing field(s) {missing}; {kind} rows need {need}, present: {sorted(row)}")
    for f in fields:
        if not isinstance(row[f], str):
            raise InputError(f"{where}: {f!r} must be a string, got {type(row[f]).__name__}")
    return {f: row[f] for f in fields}


def _check_model(model: str) -> None:
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise InputError(f"--model {model}: not a Hugging Face model folder (no config.json)")
    elif model.startswith(("/", ".", "~")) or model.count("/") > 1:
        raise InputError(f"--model {model}: no such model folder")


def cmd_train(args: argparse.Namespace) -> int:
    from starloop.loop.config import ConfigError, load_config
    from starloop.loop.io import write_json
    from starloop.loop.phase import run_training

    overrides = list(args.set or [])
    bad = [o for o in overrides if not o.split("=", 1)[0].strip().startswith("train.")]
    if bad:
        raise ConfigError(f"starloop train reads only the train section; not train.* override(s): {bad}")
    cfg = load_config(args.config, overrides)
    _check_model(args.model)
    rows = load_train_rows(args.data, args.kind)
    with atomic_dir(args.output, args.overwrite) as tmp:
        stats = run_training(cfg, args.kind, args.model, tmp, rows=rows)
        write_json(tmp / "train_stats.json", {"kind": args.kind, "model": args.model, "data": str(args.data),
                                              "stats": stats, "train": cfg.to_dict()["train"]})
    print(f"{args.kind}: {stats.get('rows')} rows, {stats.get('steps')} steps, loss {stats.get('first_loss')} -> "
          f"{stats.get('last_loss')}; model saved to {args.output / 'model'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this module's subcommands on ``sub``."""
    from starloop.loop.config import TrainConfig
    from starloop.loop.pairs import STRATEGIES

    d = TrainConfig()
    p = sub.add_parser("pairs", help="DPO preference dataset (TRL format) from verified completions")
    p.add_argument("--input", required=True, type=Path, help="verified JSONL (`starloop verify` output or verified.jsonl)")
    p.add_argument("--output", required=True, type=Path, help="dataset folder to create")
    p.add_argument("--strategy", choices=STRATEGIES, default=d.pairs_strategy)
    p.add_argument("--per-prompt", type=int, default=d.pairs_per_prompt, help="at most this many pairs per prompt")
    p.add_argument("--include-truncated", action="store_true", help="allow truncated completions as rejected")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verifier", default=None, help="verifier name recorded as provenance when rows have no task")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--push-to-hub", metavar="REPO", default=None, help="also push the dataset to this Hub repo")
    p.set_defaults(func=cmd_pairs)

    t = sub.add_parser("train", help="SFT or DPO on a dataset, on its own")
    t.add_argument("--kind", required=True, choices=("sft", "dpo"))
    t.add_argument("--model", required=True, help="starting model: a Hugging Face model folder or Hub id")
    t.add_argument("--data", required=True, type=Path, help=".jsonl, .parquet or a save_to_disk folder")
    t.add_argument("--output", required=True, type=Path, help="folder to create; the model goes to OUTPUT/model")
    t.add_argument("--config", type=Path, default=None, help="config whose train section is used (default: demo)")
    t.add_argument("--set", action="append", metavar="train.KEY=VALUE", help="override a train key (repeatable)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    t.set_defaults(func=cmd_train)
