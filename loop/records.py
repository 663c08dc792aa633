"""The loop's records, :class:`Sample` above all, and every conversion between records and rows.

Records are typed objects (``Problem`` and ``Verdict`` from ``starloop.verifiers``; here what a
sampler is asked (:class:`SampleRequest`, :class:`GenParams`), what it returns
(:class:`Generation`) and the :class:`Sample` that carries a completion through the loop); rows are the plain dicts of JSONL files and datasets. Every conversion between the two
lives in this module: run-dir files (samples, SFT rows, preference pairs) and the inputs of
the commands that read users' files (``starloop verify``, ``pairs``, ``train``), whose errors
name the file, the row and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from starloop.loop.errors import InputError
from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import VerifyItem, get_verifier


@dataclass(frozen=True)
class Generation:
    """One completion as a sampler returns it; ``finish_reason`` is ``stop`` or ``length``;
    ``num_tokens`` is None when the sampler cannot tell (a server that reports only a request's total)."""

    text: str
    finish_reason: str
    num_tokens: int | None


@dataclass(frozen=True)
class GenParams:
    """The sampling parameters of one call: ``n`` completions per prompt."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    """Per-call seed: used by the transformers backend and by vLLM on GPU; vLLM's CPU engine
    cannot take per-request seeds, so there the engine's own seed (the run seed) governs."""


@dataclass
class Sample:
    """One completion for a problem, with its provenance and, once verified, its :class:`Verdict`.

    ``prompt`` is the rendered text the model saw; for a STaR rationalization (``hinted``) that
    prompt holds the answer hint, and the kept trace is re-homed under the hint-free prompt.
    ``finish_reason`` is ``stop`` or ``length`` (cut off by max_tokens). ``model``, ``temperature``,
    ``top_p`` and ``seed`` say which model wrote it and how; ``sampler`` says in which role:
    ``student`` (the model being trained) or ``teacher`` (``sampling.teacher``). A teacher's sample
    keeps the student's rendered ``prompt``: the SFT row it may become trains the student. Fields
    a source does not record (a user's ``starloop verify`` rows) are None.
    """

    problem_id: str
    completion: str
    prompt: str | None = None
    iteration: int | None = None
    finish_reason: str | None = None
    num_tokens: int | None = None
    index: int = 0
    hinted: bool = False
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    sampler: str | None = None
    verdict: Verdict | None = None

    @property
    def correct(self) -> bool:
        return self.verdict is not None and self.verdict.correct

    @property
    def truncated(self) -> bool:
        """Cut off by the token limit (a truncated completion is not a wrong one)."""
        return self.finish_reason == "length" or (self.verdict is not None and self.verdict.reason == "truncated")


@dataclass(frozen=True)
class SampleRequest:
    """What to sample: ``params.n`` completions of ``model`` for each problem's rendered prompt."""

    model: str
    problems: list[Problem]
    prompts: list[str]
    params: GenParams
    iteration: int = -1
    hinted: bool = False
    sampler: str = "student"
    """The role of ``model``: ``student`` or ``teacher`` (set by the sampling path, recorded on every sample)."""

    def __post_init__(self) -> None:
        if len(self.problems) != len(self.prompts):
            raise ValueError(f"{len(self.problems)} problems but {len(self.prompts)} prompts")

    def part(self, start: int, end: int) -> SampleRequest:
        """The request for problems ``start..end-1``."""
        return SampleRequest(self.model, self.problems[start:end], self.prompts[start:end], self.params,
                             self.iteration, self.hinted, self.sampler)


_SAMPLE_KEYS = tuple(f.name for f in fields(Sample))


def sample_to_row(s: Sample) -> dict[str, Any]:
    row = {k: getattr(s, k) for k in _SAMPLE_KEYS}
    row["verdict"] = None if s.verdict is None else s.verdict.to_dict()
    return row


def sample_from_row(row: dict[str, Any]) -> Sample:
    """A sample from a row the loop wrote (unknown keys, e.g. a problem's ``task``, are ignored)."""
    values = {k: row[k] for k in _SAMPLE_KEYS if k in row}
    if values.get("verdict") is not None:
        values["verdict"] = Verdict.from_dict(values["verdict"])
    return Sample(**values)


def samples_from_generations(request: SampleRequest, generations: Sequence[Sequence[Generation]]) -> list[Sample]:
    """Samples from a sampler's output for ``request``: ``n`` generations per prompt, in prompt order."""
    out = []
    p = request.params
    for problem, prompt, gens in zip(request.problems, request.prompts, generations, strict=True):
        for j, g in enumerate(gens):
            out.append(Sample(problem_id=problem.id, completion=g.text, prompt=str(prompt), iteration=request.iteration,
                              finish_reason=g.finish_reason, num_tokens=g.num_tokens, index=j, hinted=request.hinted,
                              model=request.model, temperature=p.temperature, top_p=p.top_p, seed=p.seed,
                              sampler=request.sampler))
    return out


# ---------------------------------------------------------------------------------------------- SFT rows


def sft_row(s: Sample, source: str) -> dict[str, Any]:
    """An SFT row in TRL's prompt/completion format, with provenance (``source``: selfgen,
    rationalized, real or replay)."""
    return {
        "prompt": s.prompt,
        "completion": s.completion,
        "problem_id": s.problem_id,
        "iteration": s.iteration,
        "source": source,
        "hinted": s.hinted,
        "model": s.model,
        "sampler": s.sampler,
        "reason": None if s.verdict is None else s.verdict.reason,
    }


def solution_sft_row(problem: Problem, prompt: str) -> dict[str, Any]:
    """A gold worked solution (``data.real``) as an SFT row under its problem's rendered prompt."""
    return {"prompt": prompt, "completion": problem.meta["solution"], "problem_id": problem.id, "iteration": 0,
            "source": "real"}


# ---------------------------------------------------------------------------------------------- pair rows

# Column -> datasets feature type, in output order. The first three are TRL's preference format.
PAIR_COLUMNS: dict[str, str] = {
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "problem_id": "string",
    "iteration": "int64",
    "strategy": "string",
    "verifier": "string",
    "verifier_version": "string",
    "chosen_reason": "string",
    "rejected_reason": "string",
    "chosen_score": "float64",
    "rejected_score": "float64",
    "chosen_finish_reason": "string",
    "rejected_finish_reason": "string",
    "chosen_model": "string",
    "rejected_model": "string",
    "chosen_temperature": "float64",
    "rejected_temperature": "float64",
    "chosen_seed": "int64",
    "rejected_seed": "int64",
    "chosen_hinted": "bool",
    "rejected_cut": "string",
}


def pair_dataset_row(row: dict[str, Any]) -> dict[str, Any]:
    """A preference row reduced to the dataset's columns, in their order."""
    return {k: row.get(k) for k in PAIR_COLUMNS}


def pair_row(chosen: Sample, rejected: Sample, strategy: str) -> dict[str, Any]:
    """A preference row (TRL format plus provenance) from two verified samples of one prompt."""
    c, r = chosen.verdict, rejected.verdict
    assert c is not None and r is not None
    return {
        "prompt": chosen.prompt or "",
        "chosen": chosen.completion,
        "rejected": rejected.completion,
        "problem_id": chosen.problem_id,
        "iteration": chosen.iteration,
        "strategy": strategy,
        "verifier": c.verifier or r.verifier,
        "verifier_version": c.verifier_version or r.verifier_version,
        "chosen_reason": c.reason,
        "rejected_reason": r.reason,
        "chosen_score": c.score,
        "rejected_score": r.score,
        "chosen_finish_reason": chosen.finish_reason,
        "rejected_finish_reason": rejected.finish_reason,
        "chosen_model": chosen.model,
        "rejected_model": rejected.model,
        "chosen_temperature": chosen.temperature,
        "rejected_temperature": rejected.temperature,
        "chosen_seed": chosen.seed,
        "rejected_seed": rejected.seed,
        "chosen_hinted": chosen.hinted,  # a STaR rationale (written with the answer as a hint)
        "rejected_cut": None,  # set by the pairs stage when it cuts the rejected text
    }


# ---------------------------------------------------------------------------------------------- users' rows

# Row fields that verifiers read from Problem.meta (code: HumanEval entry point, stub, imports).
META_FIELDS = ("entry_point", "stub", "imports", "level")


def completion_text(value: Any) -> Any:
    """A completion as text: a string as is, a conversation's last assistant message; other values
    are returned unchanged for the caller to refuse."""
    if isinstance(value, list):
        return next((m.get("content") for m in reversed(value) if isinstance(m, dict) and m.get("role") == "assistant"),
                    None)
    return value


def verify_items_from_rows(rows: Sequence[dict[str, Any]], verifier: str | None, path: Any) -> list[VerifyItem]:
    """``starloop verify`` input: ``completion`` plus ``answer`` (math) or ``tests`` (code); a row's
    ``task`` names its verifier, ``verifier`` is the one for rows without."""
    items = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        task = row.get("task", verifier)
        if task is None:
            raise InputError(f"{where}: no 'task' field and no --verifier to judge it with")
        if not isinstance(task, str) or not task:
            raise InputError(f"{where}: 'task' must be a verifier name, got {task!r}")
        if row.get("completion") is None:
            raise InputError(f"{where}: missing field 'completion'")
        comp = completion_text(row["completion"])
        if not isinstance(comp, str):
            raise InputError(f"{where}: 'completion' must be a string, got {type(row['completion']).__name__}")
        answer, tests = row.get("answer"), row.get("tests")
        if answer is None and tests is None:
            raise InputError(f"{where}: needs 'answer' (math) or 'tests' (code)")
        if answer is not None and not isinstance(answer, str | int | float):
            raise InputError(f"{where}: 'answer' must be a string or number, got {type(answer).__name__}")
        fr = row.get("finish_reason")
        problem = Problem(id=str(row.get("problem_id", row.get("id", i))), task=task,
                          prompt=str(row.get("prompt", "")), answer=None if answer is None else str(answer),
                          tests=tests, meta={k: row[k] for k in META_FIELDS if k in row})
        items.append(VerifyItem(comp, problem, fr if isinstance(fr, str) else None))
    return items


def verified_row(row: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """A ``starloop verify`` output row: the input row (every field passes through) plus its verdict."""
    return {**row, "verdict": verdict.to_dict()}


def _optional(row: dict[str, Any], key: str, cast: type, where: str) -> Any:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key!r} must be {cast.__name__}, got {value!r}") from None


def samples_from_verified_rows(rows: Sequence[dict[str, Any]], path: Any, verifier: str | None = None,
                               conversations: dict[str, list[dict[str, str]]] | None = None) -> list[Sample]:
    """Samples from verified rows (``starloop verify`` output, or a run's ``verified.jsonl``), for
    ``starloop pairs``. A verdict without its verifier's name gets the row's ``verifier`` / ``task``
    or ``verifier``. With ``conversations``, a prompt may be a conversation (TRL's conversational
    form, a list of {role, content} messages): the sample's prompt is then its JSON text, a key of
    ``conversations`` that maps back to the messages (all rows must then have that form)."""
    if not rows:
        raise InputError(f"{path}: no rows")
    if not any("verdict" in r for r in rows):
        raise InputError(f"{path}: no row has a 'verdict'; run `starloop verify` on it first")
    with_prompt = ["prompt" in r for r in rows]
    if any(with_prompt) and not all(with_prompt):
        i = with_prompt.index(False) + 1
        raise InputError(f"{path} row {i}: missing field 'prompt' (other rows have one; the prompt groups the pairs)")
    forms = [isinstance(r.get("prompt"), list) for r in rows]
    if conversations is not None and any(forms) and not all(forms):
        i = next(k for k, f in enumerate(forms) if f != forms[0]) + 1
        raise InputError(f"{path} row {i}: mixes string and conversational (message list) prompts with row 1; "
                         f"use one form for every row")
    versions: dict[str, str | None] = {}
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        if "completion" not in row:
            raise InputError(f"{where}: missing field 'completion'")
        comp = completion_text(row["completion"])
        if not isinstance(comp, str):
            raise InputError(f"{where}: 'completion' must be a string, got {type(row['completion']).__name__}")
        if "verdict" not in row:
            raise InputError(f"{where}: missing field 'verdict'")
        try:
            verdict = Verdict.from_dict(row["verdict"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: unusable 'verdict' {row['verdict']!r} ({exc})") from None
        prompt = row.get("prompt")
        if isinstance(prompt, list) and conversations is not None:
            msgs = _messages(prompt, where, "prompt")
            prompt = json.dumps(msgs, ensure_ascii=False)
            conversations[prompt] = msgs
        elif prompt is not None and not isinstance(prompt, str):
            raise InputError(f"{where}: 'prompt' must be a string or a list of {{role, content}} messages, got "
                             f"{type(prompt).__name__}")
        pid = row.get("problem_id", row.get("id"))
        if pid is None and prompt is None:
            raise InputError(f"{where}: needs 'prompt' or 'problem_id' / 'id' to group completions")
        name = verdict.verifier or row.get("verifier") or row.get("task") or verifier
        if name is not None and verdict.verifier is None:
            if name not in versions:
                try:
                    versions[name] = get_verifier(name).version
                except KeyError:
                    versions[name] = None
            verdict = replace(verdict, verifier=name,
                              verifier_version=row.get("verifier_version") or versions[name])
        fr = row.get("finish_reason")
        out.append(Sample(
            problem_id="" if pid is None else str(pid), completion=comp, prompt=prompt,
            iteration=_optional(row, "iteration", int, where), finish_reason=fr if isinstance(fr, str) else None,
            model=_optional(row, "model", str, where), temperature=_optional(row, "temperature", float, where),
            seed=_optional(row, "seed", int, where), sampler=_optional(row, "sampler", str, where), verdict=verdict,
        ))
    return out


def sample_output_row(s: Sample, problem: Problem) -> dict[str, Any]:
    """A ``starloop sample`` output row: the sample, the problem's ``task`` and what its verifier reads
    (``answer`` / ``tests``, a code problem's ``entry_point`` / ``imports``), so ``starloop verify``
    reads it directly."""
    row = {**sample_to_row(s), "task": problem.task}
    row.pop("verdict")
    if problem.answer is not None:
        row["answer"] = problem.answer
    if problem.tests is not None:
        row["tests"] = problem.tests
    row.update({k: problem.meta[k] for k in ("entry_point", "imports") if problem.meta.get(k)})
    return row


_TRAIN_FIELDS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected")}


def _messages(value: Any, where: str, field: str, *, assistant_only: bool = False) -> list[dict[str, str]]:
    """A conversational field: a non-empty list of {role, content} messages (only assistant ones for a
    completion / chosen / rejected side)."""
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)
    if not ok:
        raise InputError(f"{where}: {field!r} must be a string or a list of {{role, content}} messages, got "
                         f"{type(value).__name__}")
    if assistant_only and any(m["role"] != "assistant" for m in value):
        raise InputError(f"{where}: {field!r} as messages must hold assistant messages only")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def training_row(row: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """An SFT (prompt/completion or messages) or DPO (prompt/chosen/rejected) row, checked, in TRL's
    standard form (strings) or conversational form (lists of {role, content} messages; the
    completion sides of a conversational row are assistant messages). A row is one form or the
    other, as TRL requires."""
    if kind == "sft" and "prompt" not in row and "messages" in row:
        msgs = _messages(row["messages"], where, "messages")
        if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            raise InputError(f"{where}: 'messages' must be a list of {{role, content}} messages ending with an "
                             f"assistant message")
        return {"messages": msgs}
    names = _TRAIN_FIELDS[kind]
    missing = [f for f in names if f not in row]
    if missing:
        need = "prompt/completion (or messages)" if kind == "sft" else "prompt/chosen/rejected"
        raise InputError(f"{where}: missing field(s) {missing}; {kind} rows need {need}, present: {sorted(row)}")
    if all(isinstance(row[f], str) for f in names):
        return {f: row[f] for f in names}
    if all(isinstance(row[f], list) for f in names):
        return {f: _messages(row[f], where, f, assistant_only=f != "prompt") for f in names}
    for f in names:
        if not isinstance(row[f], str | list):
            raise InputError(f"{where}: {f!r} must be a string, got {type(row[f]).__name__}")
    raise InputError(f"{where}: mixes strings and message lists in {list(names)}; use one form for all (TRL's "
                     f"standard or conversational format)")
