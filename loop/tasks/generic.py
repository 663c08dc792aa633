"""Generic adapter: any JSONL / JSON / Parquet / CSV file, directory, or Hub dataset, with a
field mapping from the config (``data.train.fields``: id, prompt, answer, tests, task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starloop.loop.config import DatasetConfig
from starloop.loop.tasks import register_adapter
from starloop.verifiers.types import Problem

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_rows(cfg: DatasetConfig) -> list[dict[str, Any]]:
    """Rows of the dataset ``cfg.path`` (local file, saved dataset dir, or Hub id) via ``datasets``."""
    import datasets

    if not cfg.path:
        raise ValueError(f"data source {cfg.source!r} needs a path (local file or Hub id)")
    path = Path(cfg.path)
    split = cfg.split or "train"
    if path.is_file():
        fmt = _FORMATS.get(path.suffix)
        if fmt is None:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_FORMATS)}")
        ds = datasets.load_dataset(fmt, data_files={split: str(path)}, split=split)
    elif path.is_dir() and (path / "dataset_info.json").exists():
        ds = datasets.load_from_disk(str(path))
    else:
        ds = datasets.load_dataset(cfg.path, cfg.options.get("name"), split=split)
    return [dict(r) for r in ds]


def rows_to_problems(rows: list[dict[str, Any]], cfg: DatasetConfig, *, default_task: str | None) -> list[Problem]:
    fields = {"id": "id", "prompt": "prompt", "answer": "answer", "tests": "tests", "task": "task", **cfg.fields}
    problems = []
    for i, row in enumerate(rows):
        where = f"{cfg.path} row {i}"
        if fields["prompt"] not in row:
            raise ValueError(f"{where}: missing field {fields['prompt']!r} (prompt); present: {sorted(row)}")
        task = cfg.task or row.get(fields["task"]) or default_task
        if not task:
            raise ValueError(f"{where}: no task; set data.*.task or map a 'task' field")
        answer, tests = row.get(fields["answer"]), row.get(fields["tests"])
        if answer is None and tests is None:
            raise ValueError(
                f"{where}: needs {fields['answer']!r} (answer) or {fields['tests']!r} (tests); present: {sorted(row)}"
            )
        pid = row.get(fields["id"])
        problems.append(
            Problem(
                id=str(pid) if pid is not None else f"{Path(str(cfg.path)).stem}-{i}",
                task=str(task),
                prompt=str(row[fields["prompt"]]),
                answer=None if answer is None else str(answer),
                tests=tests,
                meta={k: v for k, v in row.items() if k not in fields.values() and _jsonable(v)},
            )
        )
    return problems


def _jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None))


@register_adapter("jsonl")
@register_adapter("parquet")
@register_adapter("hub")
@register_adapter("file")
def generic(cfg: DatasetConfig, seed: int) -> list[Problem]:
    return rows_to_problems(load_rows(cfg), cfg, default_task=None)
