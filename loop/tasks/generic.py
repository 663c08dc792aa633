"""Dataset loading shared by every file- or Hub-based adapter, and the generic adapter.

:func:`load_rows` reads any dataset the way ``datasets`` users expect: a local JSONL / JSON /
Parquet / CSV file, a ``save_to_disk`` directory, a local data directory, or a Hub id with a
config name (``openai/gsm8k`` + ``options.name: main``). Splits take Hugging Face slicing
(``train[:1000]``, ``test[10%:]``); row indices stay those of the whole split, so problem ids of
two slices of one split never collide.

The generic adapter (sources ``jsonl``, ``parquet``, ``hub``, ``file``) maps columns to a
:class:`Problem` through ``data.*.fields`` ({id, prompt, answer, tests, task} -> column), so a
file whose rows carry a ``task`` column mixes math and code problems. The ``mixed`` source pools
the problems of several datasets (``data.*.parts``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starloop.loop.config import ConfigError, DatasetConfig, build
from starloop.loop.errors import InputError
from starloop.loop.fileio import iter_jsonl
from starloop.loop.tasks.registry import load_problems, register_adapter
from starloop.verifiers.records import Problem
from starloop.verifiers.registry import needs_gold

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_SLICE = re.compile(r"^(?P<base>[^\[\]]+)(?:\[(?P<start>-?\d*%?):(?P<stop>-?\d*%?)\])?$")


@dataclass
class LoadOptions:
    """Options every file- or Hub-based adapter accepts (``data.*.options``)."""

    name: str | list[str] | None = None
    """Hub dataset config name; a list loads several configs and concatenates them (in order)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""


def parse_options(cls: type, cfg: DatasetConfig) -> Any:
    """``cfg.options`` as an options dataclass; an unknown key is a ConfigError naming it."""
    return build(cls, dict(cfg.options), prefix=f"data.<{cfg.source}>.options.")


def parse_split(spec: str) -> tuple[str, str | None, str | None]:
    """``"train[10:20]"`` -> ``("train", "10", "20")``; no slice -> ``(spec, None, None)``."""
    m = _SLICE.match(spec.replace(" ", ""))
    if m is None:
        raise ConfigError(f"data split {spec!r}: expected NAME or NAME[START:STOP] (ints or percents)")
    return m["base"], m["start"], m["stop"]


def _bound(text: str | None, n: int) -> int | None:
    if not text:
        return None
    if text.endswith("%"):
        return round(n * int(text[:-1]) / 100)
    return int(text)


def _where(cfg: DatasetConfig) -> str:
    return f"data source {cfg.source!r} ({cfg.path}, split {cfg.split or 'train'})"


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or Path(path).suffix in _FORMATS


def load_rows(cfg: DatasetConfig, options: LoadOptions | None = None) -> list[dict[str, Any]]:
    """Rows of dataset ``cfg.path`` (local file, saved dataset dir, data dir, or Hub id) via ``datasets``.

    Each row gets ``_index``: its position in the whole (unsliced) split.
    """
    import datasets  # heavy: deferred until a dataset is read

    if not cfg.path:
        raise ConfigError(f"data source {cfg.source!r} needs a path (a local file or directory, or a Hub id)")
    opts = options if options is not None else parse_options(LoadOptions, cfg)
    spec = cfg.split or "train"
    base, start, stop = parse_split(spec)
    path = Path(cfg.path).expanduser()
    try:
        if path.is_file():
            fmt = _FORMATS.get(path.suffix)
            if fmt is None:
                raise ConfigError(f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_FORMATS)}")
            if path.suffix == ".jsonl":
                for _ in iter_jsonl(path):  # a malformed line is an error naming it, before datasets reads the file
                    pass
            ds = datasets.load_dataset(fmt, data_files={base: str(path)}, split=base)
        elif path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if base not in ds:
                    raise ConfigError(f"{path}: no split {base!r}; splits: {sorted(ds)}")
                ds = ds[base]
        elif path.is_dir():
            ds = datasets.load_dataset(str(path), split=base)
        elif _looks_local(cfg.path):
            raise ConfigError(f"{_where(cfg)}: no such file or directory: {path}")
        else:
            names = opts.name if isinstance(opts.name, list) else [opts.name]
            parts = [datasets.load_dataset(cfg.path, n, split=base, revision=opts.revision) for n in names]
            ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    except (ConfigError, InputError):
        raise
    except Exception as exc:  # datasets raises many types (not found, offline, bad schema): name the source
        raise InputError(f"{_where(cfg)}: could not load: {type(exc).__name__}: {exc}") from exc
    n = len(ds)
    lo, hi, _ = slice(_bound(start, n), _bound(stop, n)).indices(n)
    rows = ds.select(range(lo, hi)).to_list() if (lo, hi) != (0, n) else ds.to_list()
    for i, row in enumerate(rows, lo):
        row["_index"] = i
    return rows


def require(row: dict[str, Any], names: Iterable[str], cfg: DatasetConfig, what: str = "") -> None:
    """Raise InputError naming the first of ``names`` missing from ``row`` (with the fields present)."""
    for name in names:
        if name not in row or row[name] is None:
            present = sorted(k for k in row if not k.startswith("_"))
            schema = f" ({what} schema)" if what else ""
            raise InputError(
                f"{_where(cfg)} row {row.get('_index', '?')}: missing field {name!r}{schema}; fields present: {present}"
            )


def first_present(row: dict[str, Any], names: Sequence[str], cfg: DatasetConfig, what: str) -> str:
    """The first of ``names`` that ``row`` has; InputError naming all of them otherwise."""
    for name in names:
        if row.get(name) is not None:
            return name
    present = sorted(k for k in row if not k.startswith("_"))
    raise InputError(
        f"{_where(cfg)} row {row.get('_index', '?')}: missing field {' or '.join(map(repr, names))} "
        f"({what} schema); fields present: {present}"
    )


def split_name(cfg: DatasetConfig) -> str:
    return parse_split(cfg.split or "train")[0]


def jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None))


def _question(value: Any, cfg: DatasetConfig, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A problem's text from its prompt column: a string, or a single-turn conversation in TRL's
    conversational form (an optional system message, then one user message; the system message is
    kept in ``meta["system"]``, the rendered prompt uses ``prompt.system``)."""
    if not isinstance(value, list):
        return str(value), {}
    where = f"{_where(cfg)} row {row.get('_index', '?')}"
    ok = all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value)
    roles = [m.get("role") for m in value] if ok else []
    if roles not in (["user"], ["system", "user"]):
        raise InputError(f"{where}: a conversational prompt must be an optional system message and one user "
                         f"message ({{role, content}}), got roles {roles or value!r}")
    return value[-1]["content"], ({"system": value[0]["content"]} if len(value) == 2 else {})


def rows_to_problems(rows: list[dict[str, Any]], cfg: DatasetConfig, *, default_task: str | None) -> list[Problem]:
    """Problems from rows through the field mapping ``cfg.fields``; other scalar columns go to ``meta``."""
    fields = {"id": "id", "prompt": "prompt", "answer": "answer", "tests": "tests", "task": "task", **cfg.fields}
    unknown = sorted(set(cfg.fields) - {"id", "prompt", "answer", "tests", "task"})
    if unknown:
        raise ConfigError(f"data.*.fields: unknown key(s) {unknown}; known: ['answer', 'id', 'prompt', 'task', 'tests']")
    stem = Path(str(cfg.path)).stem
    problems = []
    for row in rows:
        require(row, [fields["prompt"]], cfg)
        task = cfg.task or row.get(fields["task"]) or default_task
        if not task:
            raise ConfigError(f"{_where(cfg)}: no task; set data.*.task or map a 'task' field (data.*.fields.task)")
        answer, tests = row.get(fields["answer"]), row.get(fields["tests"])
        if cfg.unlabeled:
            answer = tests = None
        elif answer is None and tests is None and needs_gold(str(task)):  # an LLM judge needs neither
            first_present(row, [fields["answer"], fields["tests"]], cfg,
                          "answer (math) or tests (code); data.*.unlabeled: true reads rows without either")
        pid = row.get(fields["id"])
        question, extra = _question(row[fields["prompt"]], cfg, row)
        meta = {k: v for k, v in row.items() if k not in fields.values() and not k.startswith("_") and jsonable(v)}
        problems.append(
            Problem(
                id=str(pid) if pid is not None else f"{stem}-{split_name(cfg)}-{row['_index']}",
                task=str(task),
                prompt=question,
                answer=None if answer is None else str(answer),
                tests=tests,
                meta={**meta, **extra},
            )
        )
    return problems


@register_adapter("jsonl")
@register_adapter("parquet")
@register_adapter("hub")
@register_adapter("file")
def generic(cfg: DatasetConfig, seed: int) -> list[Problem]:
    return rows_to_problems(load_rows(cfg), cfg, default_task=None)


@register_adapter("mixed")
def mixed(cfg: DatasetConfig, seed: int) -> list[Problem]:
    """The problems of every dataset in ``cfg.parts``, in order (each part's own limit applies)."""
    if not cfg.parts:
        raise ConfigError("data source 'mixed' needs parts: a list of datasets, e.g. "
                          "[{source: gsm8k, path: openai/gsm8k, options: {name: main}}, {source: mbpp, ...}]")
    problems: list[Problem] = []
    for part in cfg.parts:
        problems += load_problems(part, seed)
    return problems


GENERIC_SOURCES = ("jsonl", "parquet", "hub", "file")


def load_solutions(cfg: DatasetConfig, seed: int = 0) -> list[Problem]:
    """Problems with a gold worked solution in ``meta["solution"]``, for ``data.real``.

    A generic source gives its ``prompt`` / ``completion`` columns (``fields`` maps other names);
    any other adapter its own problems, which must carry a solution (arithmetic, gsm8k, math, mbpp do).
    """
    if cfg.source not in GENERIC_SOURCES:
        problems = load_problems(cfg, seed)
        for p in problems:
            if not p.meta.get("solution"):
                raise InputError(f"{_where(cfg)}: problem {p.id!r} has no worked solution to train on; data.real "
                                 f"needs one per problem (or a file with prompt / completion columns)")
        return problems
    fields = {"prompt": "prompt", "completion": "completion", **cfg.fields}
    out = []
    for i, row in enumerate(load_rows(cfg)):
        require(row, [fields["prompt"], fields["completion"]], cfg, "real data: prompt / completion")
        out.append(Problem(id=f"real-{i}", task=cfg.task or "math", prompt=str(row[fields["prompt"]]),
                           meta={"solution": str(row[fields["completion"]])}))
    return out
