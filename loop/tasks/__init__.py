"""Task adapters: turn a dataset description (:class:`DatasetConfig`) into :class:`Problem` s.

Adapters are registered by name; ``data.train.source`` / ``data.eval.source`` pick one:
``arithmetic`` (the demo task), ``gsm8k``, ``math``, ``math500``, ``mbpp``, ``humaneval``, the generic
``jsonl`` / ``parquet`` / ``hub`` / ``file`` (any schema, through ``data.*.fields``), and ``mixed``
(several datasets pooled; each problem's ``task`` picks its verifier).
"""

from __future__ import annotations

from collections.abc import Callable

from starloop.loop.config import ConfigError, DatasetConfig
from starloop.verifiers.types import Problem

Adapter = Callable[[DatasetConfig, int], list[Problem]]
_ADAPTERS: dict[str, Adapter] = {}


def register_adapter(name: str) -> Callable[[Adapter], Adapter]:
    def deco(fn: Adapter) -> Adapter:
        _ADAPTERS[name] = fn
        return fn

    return deco


def adapter_names() -> list[str]:
    _load_builtins()
    return sorted(_ADAPTERS)


def _load_builtins() -> None:
    from starloop.loop.tasks import arithmetic, generic, gsm8k, humaneval, math_tasks, mbpp  # noqa: F401


def load_problems(cfg: DatasetConfig, seed: int = 0) -> list[Problem]:
    """Problems for ``cfg``; unknown source or unusable data raise with a clear message."""
    _load_builtins()
    if cfg.source not in _ADAPTERS:
        raise ConfigError(f"data source {cfg.source!r} is unknown; known: {sorted(_ADAPTERS)}")
    problems = _ADAPTERS[cfg.source](cfg, seed)
    if cfg.limit is not None:
        problems = problems[: cfg.limit]
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError(f"data source {cfg.source!r} ({cfg.path}) yields duplicate problem ids")
    return problems
