"""A preference dataset on disk, as ``starloop pairs`` writes it: ``save_to_disk`` files,
``pairs.jsonl``, ``pairs.parquet``, ``stats.json`` and a dataset card (``README.md``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from starloop.loop.records import PAIR_COLUMNS, pair_dataset_row


def features(conversational: bool = False):
    """The datasets ``Features`` of a pairs dataset (stable types even when a column is all None); in
    TRL's conversational form, prompt / chosen / rejected are lists of {role, content} messages."""
    import datasets  # heavy: deferred

    feats = {k: datasets.Value(t) for k, t in PAIR_COLUMNS.items()}
    if conversational:
        message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
        feats.update({k: [message] for k in ("prompt", "chosen", "rejected")})
    return datasets.Features(feats)


def to_dataset(rows: Sequence[Mapping[str, Any]]):
    """A ``datasets.Dataset`` of preference rows with the ``PAIR_COLUMNS`` schema."""
    import datasets  # heavy: deferred

    conversational = bool(rows) and isinstance(rows[0].get("prompt"), list)
    return datasets.Dataset.from_list([pair_dataset_row(r) for r in rows], features=features(conversational))


def dataset_card(stats: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """A Hugging Face dataset card (README.md) for a pairs dataset: counts, settings, per-reason stats."""
    reasons = sorted(set(stats["candidates_by_reason"]) | set(stats["rejected_by_reason"]))
    reason_rows = "\n".join(
        f"| {r} | {stats['candidates_by_reason'].get(r, 0)} | {stats['rejected_by_reason'].get(r, 0)} |"
        for r in reasons
    )
    settings = "\n".join(f"- {k}: `{v}`" for k, v in meta.items())
    columns = ", ".join(f"`{c}`" for c in PAIR_COLUMNS)
    return f"""---
tags:
- dpo
- preference
- starloop
configs:
- config_name: default
  data_files: pairs.parquet
---

# Preference pairs (DPO)

Chosen = a verified-correct completion, rejected = a failed completion of the same prompt, in TRL's
standard preference format (`prompt`, `chosen`, `rejected`; the prompt is the rendered text the model
was sampled with). Made by `starloop pairs`.

## Counts

| | |
|---|---|
| pairs | {stats['pairs']} |
| prompts | {stats['prompts']} |
| prompts with pairs | {stats['prompts_with_pairs']} |
| prompts without a correct completion | {stats['prompts_without_correct']} |
| prompts without a usable failed completion | {stats['prompts_without_rejected']} |
| candidate completions | {stats['candidates']} |
| duplicate completions merged | {stats['duplicate_completions']} |
| completions judged both ways, left out | {stats['conflicting_verdicts']} |
| truncated failed completions left out | {stats['truncated_rejected_dropped']} |
| truncated correct completions left out | {stats['truncated_chosen_dropped']} |
| mean length difference chosen/rejected (chars) | {stats['mean_abs_length_diff']} |

## Settings

{settings}

## Verdict reasons

| reason | candidates | as rejected in pairs |
|---|---|---|
{reason_rows}

## Files and columns

`pairs.parquet` (what `datasets.load_dataset` reads, locally or from the Hub), `pairs.jsonl`, and
locally the `datasets` files of `save_to_disk` (a `DatasetDict` with one `train` split, for
`datasets.load_from_disk`). Columns: {columns}.

```python
import datasets
from trl import DPOConfig, DPOTrainer

ds = datasets.load_dataset("THIS_FOLDER_OR_REPO", split="train")  # or load_from_disk(...)["train"]
trainer = DPOTrainer(model="MODEL", args=DPOConfig(output_dir="out"), train_dataset=ds)
```
"""

HUB_FILES = ("README.md", "pairs.parquet")
"""What a dataset repository on the Hub needs of a pairs folder: the card (whose ``configs`` header
points ``load_dataset`` at the Parquet file) and the data."""


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Upload a pairs folder's ``HUB_FILES`` to the dataset repository ``repo_id`` (created if needed)
    with ``huggingface_hub``; returns the commit URL."""
    from huggingface_hub import HfApi  # heavy: deferred

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                             allow_patterns=list(HUB_FILES), commit_message="Preference pairs from starloop pairs")
    return str(info)


def write_dataset(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], out: str | Path,
                  meta: Mapping[str, Any]) -> Path:
    """Write ``rows`` to the (new) folder ``out``: save_to_disk files (a ``DatasetDict`` with a ``train``
    split, so that ``load_dataset(out)`` reads the Parquet file the card names and ``load_from_disk(out)``
    the arrow files), pairs.jsonl, pairs.parquet, stats.json and README.md. Returns ``out``."""
    import datasets  # heavy: deferred

    out = Path(out)
    ds = to_dataset(rows)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(out))
    ds.to_parquet(str(out / "pairs.parquet"))
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(pair_dataset_row(r), ensure_ascii=False) + "\n")
    (out / "stats.json").write_text(json.dumps({"stats": dict(stats), "settings": dict(meta)}, indent=2) + "\n")
    (out / "README.md").write_text(dataset_card(stats, meta), encoding="utf-8")
    return out
