"""The adapter registry: ``data.*.source`` names an adapter that turns a :class:`DatasetConfig`
into :class:`Problem` s; adapters register with :func:`register_adapter`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from starloop.loop.config import ConfigError, DatasetConfig
from starloop.loop.errors import InputError
from starloop.verifiers.records import Problem

Adapter = Callable[[DatasetConfig, int], list[Problem]]
_ADAPTERS: dict[str, Adapter] = {}


def register_adapter(name: str) -> Callable[[Adapter], Adapter]:
    def deco(fn: Adapter) -> Adapter:
        _ADAPTERS[name] = fn
        return fn

    return deco


def adapter_names() -> list[str]:
    return sorted(_ADAPTERS)


def load_problems(cfg: DatasetConfig, seed: int = 0) -> list[Problem]:
    """Problems for ``cfg``; unknown source or unusable data raise with a clear message."""
    if cfg.source not in _ADAPTERS:
        raise ConfigError(f"data source {cfg.source!r} is unknown; known: {sorted(_ADAPTERS)}")
    problems = _ADAPTERS[cfg.source](cfg, seed)
    if cfg.unlabeled:
        problems = [without_answer(p) for p in problems]
    if cfg.limit is not None:
        problems = problems[: cfg.limit]
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise InputError(f"data source {cfg.source!r} ({cfg.path}) yields duplicate problem ids")
    return problems


HIDDEN_META = ("solution", "answer", "canonical_solution", "code", "test", "test_list", "tests")
"""Problem ``meta`` keys that give the answer away; an unlabeled problem keeps none of them."""


def without_answer(problem: Problem) -> Problem:
    """``problem`` as an unlabeled one (``data.*.unlabeled``): no answer, no tests, no worked solution."""
    return dataclasses.replace(problem, answer=None, tests=None,
                               meta={k: v for k, v in problem.meta.items() if k not in HIDDEN_META})
