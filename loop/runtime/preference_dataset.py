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

`pairs.parquet`, `pairs.jsonl`, and the `datasets` files of `save_to_disk` (this folder loads with
`datasets.load_from_disk`). Columns: {columns}.

```python
import datasets
from trl import DPOConfig, DPOTrainer

ds = datasets.load_from_disk("THIS_FOLDER")
trainer = DPOTrainer(model="MODEL", args=DPOConfig(output_dir="out"), train_dataset=ds)
```
"""


def write_dataset(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], out: str | Path,
                  meta: Mapping[str, Any]) -> Path:
    """Write ``rows`` to the (new) folder ``out``: save_to_disk files, pairs.jsonl, pairs.parquet,
    stats.json and README.md. Returns ``out``."""
    out = Path(out)
    ds = to_dataset(rows)
    ds.save_to_disk(str(out))
    ds.to_parquet(str(out / "pairs.parquet"))
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(pair_dataset_row(r), ensure_ascii=False) + "\n")
    (out / "stats.json").write_text(json.dumps({"stats": dict(stats), "settings": dict(meta)}, indent=2) + "\n")
    (out / "README.md").write_text(dataset_card(stats, meta), encoding="utf-8")
    return out
