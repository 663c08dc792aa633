"""``starloop train``: SFT or DPO on its own, from a dataset (JSONL, Parquet or a ``save_to_disk``
folder), with the ``train`` section of a config (``train.sft`` / ``train.dpo`` in TRL's names,
``train.lora``, ``train.launch``) and its launcher; written into a temporary folder renamed into
place at the end, so a failure never leaves a half-written output behind."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from starloop.loop.cli.common import add_config_args
from starloop.loop.config import TrainConfig, load_section, to_plain
from starloop.loop.errors import InputError
from starloop.loop.fileio import atomic_dir, read_jsonl, write_json
from starloop.loop.records import training_row
from starloop.loop.runtime.launch import run_training
from starloop.loop.runtime.models import LoadOptions, check_model


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", parents=parents, help="SFT or DPO on a dataset, on its own",
                       description="Train a model with TRL's SFTTrainer or DPOTrainer on a dataset.")
    p.add_argument("--kind", required=True, choices=("sft", "dpo"), help="SFT (prompt/completion or messages rows) "
                                                                           "or DPO (prompt/chosen/rejected rows)")
    p.add_argument("--model", required=True, help="starting model: a Hugging Face model folder or Hub id")
    p.add_argument("--data", required=True, type=Path, help=".jsonl, .parquet or a save_to_disk folder")
    p.add_argument("--output", required=True, type=Path, help="folder to create; the model goes to OUTPUT/model")
    add_config_args(p, what="a train section (train.sft / train.dpo in TRL's names, train.lora, train.launch)",
                    default="TRL's defaults for SFTConfig / DPOConfig, not the demo's")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def load_train_rows(path: Path, kind: str) -> list[dict[str, Any]]:
    """Training rows from JSONL, Parquet or a ``save_to_disk`` folder, checked for ``kind``."""
    path = Path(path)
    if path.is_dir():
        import datasets  # heavy: deferred

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
        import pyarrow.parquet as pq  # heavy: deferred

        rows = pq.read_table(path).to_pylist()
    elif not path.exists():
        raise InputError(f"input not found: {path}")
    else:
        raise InputError(f"{path}: unsupported data file; use .jsonl, .parquet or a save_to_disk folder")
    if not rows:
        raise InputError(f"{path}: no rows")
    return [training_row(r, kind, f"{path} row {i}") for i, r in enumerate(rows, 1)]


def run(args: argparse.Namespace) -> int:
    model_sets = [s for s in args.set if s.split("=", 1)[0].strip().startswith("model.")]
    tcfg: TrainConfig = load_section("train", args.config, [s for s in args.set if s not in model_sets])
    load = LoadOptions.of(load_section("model", args.config, model_sets))  # model.dtype, model.trust_remote_code
    check_model(args.model, "--model")
    rows = load_train_rows(args.data, args.kind)
    with atomic_dir(args.output, args.overwrite) as tmp:
        stats = run_training(tcfg, args.kind, args.model, tmp, rows=rows, load=load)
        write_json(tmp / "train_stats.json", {"kind": args.kind, "model": args.model, "data": str(args.data),
                                              "stats": stats, "train": to_plain(tcfg)})
    print(f"{args.kind}: {stats.get('rows')} rows, {stats.get('steps')} steps, loss {stats.get('first_loss')} -> "
          f"{stats.get('last_loss')}; model saved to {args.output / 'model'}")
    return 0
