"""The verifier registry: names -> verifiers.

A verifier is a pure function ``fn(completion, problem, *, finish_reason=None, config) -> Verdict``
registered under a name; a problem's ``task`` selects it. Each verifier may declare its own
small config dataclass (its per-verifier parameters) and a batch function that runs many
verifications in parallel (the math verifier uses killable worker processes, the code
verifier the sandbox pool). Third-party packages register through the ``starloop.verifiers``
entry-point group: the entry point names a module (or callable) whose import registers.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from starloop.verifiers.records import Problem, Verdict

log = logging.getLogger(__name__)

BUILTIN_MODULES = ("starloop.verifiers.math", "starloop.verifiers.code", "starloop.verifiers.judge")
ENTRY_POINT_GROUP = "starloop.verifiers"


class VerifyFn(Protocol):
    def __call__(
        self, completion: str, problem: Problem, *, finish_reason: str | None = None, config: Any = None
    ) -> Verdict: ...


@dataclass(frozen=True)
class VerifyItem:
    """One unit of batch work: a completion to judge against a problem."""

    completion: str
    problem: Problem
    finish_reason: str | None = None


BatchFn = Callable[[Sequence[VerifyItem], Any, int], list[Verdict]]
CheckFn = Callable[[Problem], None]
"""Raises ValueError (naming the problem) if a problem cannot be judged by the verifier: a missing
gold answer, malformed tests. Bad problems are the user's input, refused before any work."""


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    fn: VerifyFn
    version: str
    config_cls: type | None = None
    batch_fn: BatchFn | None = None
    answer_format: str = ""
    """Instruction appended to prompts so the model answers in the form this verifier reads."""
    check_problem: CheckFn | None = None

    def check(self, problems: Sequence[Problem]) -> None:
        """Raise ValueError for the first problem this verifier cannot judge."""
        if self.check_problem is not None:
            for problem in problems:
                self.check_problem(problem)

    def make_config(self, options: dict[str, Any] | None = None) -> Any:
        """Build this verifier's config from a plain mapping, naming any unknown key."""
        options = dict(options or {})
        if self.config_cls is None:
            if options:
                raise ValueError(f"verifier {self.name!r} takes no options, got {sorted(options)}")
            return None
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for verifier {self.name!r}; known options: {sorted(known)}"
            )
        return self.config_cls(**options)


_REGISTRY: dict[str, VerifierSpec] = {}
_loaded = False


def register_verifier(
    name: str,
    *,
    version: str,
    config_cls: type | None = None,
    answer_format: str = "",
    batch_fn: BatchFn | None = None,
    check_problem: CheckFn | None = None,
) -> Callable[[VerifyFn], VerifyFn]:
    """Decorator: register ``fn`` as the verifier called ``name``; ``check_problem`` refuses problems it
    cannot judge before any work starts."""

    def deco(fn: VerifyFn) -> VerifyFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name].fn})")
        _REGISTRY[name] = VerifierSpec(name, fn, version, config_cls, batch_fn, answer_format, check_problem)
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the built-in verifiers
            log.error("could not load verifier plugin %s (%s): %s", ep.name, ep.value, exc)


def get_verifier(name: str) -> VerifierSpec:
    """The verifier registered as ``name``; a clear error listing the known names otherwise."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no verifier named {name!r}; registered: {sorted(_REGISTRY)}") from None


def needs_gold(name: str) -> bool:
    """Whether verifier ``name`` refuses a problem with neither an answer nor tests (math, code: yes; an LLM
    judge: no). An unknown name needs gold (its own error comes where it is used)."""
    try:
        get_verifier(name).check([Problem(id="-", task=name, prompt="-")])
    except (KeyError, ValueError):
        return True
    return False


def list_verifiers() -> list[VerifierSpec]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _stamp(spec: VerifierSpec, verdict: Verdict) -> Verdict:
    return dataclasses.replace(verdict, verifier=spec.name, verifier_version=spec.version)


def verify_one(
    name: str, completion: str, problem: Problem, *, finish_reason: str | None = None, options: dict | None = None
) -> Verdict:
    """Judge one completion with verifier ``name``; the verdict names the verifier and its version."""
    spec = get_verifier(name)
    return _stamp(spec, spec.fn(completion, problem, finish_reason=finish_reason, config=spec.make_config(options)))


def verify_batch(
    name: str, items: Sequence[VerifyItem], *, options: dict | None = None, workers: int = 1
) -> list[Verdict]:
    """Judge ``items`` with verifier ``name``; results are in input order, each naming the verifier
    and its version."""
    spec = get_verifier(name)
    config = spec.make_config(options)
    spec.check([it.problem for it in items])  # before any work: a bad problem never stops a batch halfway
    if spec.batch_fn is not None:
        verdicts = spec.batch_fn(items, config, workers)
    elif workers <= 1:
        verdicts = [spec.fn(it.completion, it.problem, finish_reason=it.finish_reason, config=config) for it in items]
    else:
        with ThreadPoolExecutor(workers) as ex:
            verdicts = list(ex.map(
                lambda it: spec.fn(it.completion, it.problem, finish_reason=it.finish_reason, config=config), items))
    return [_stamp(spec, v) for v in verdicts]
