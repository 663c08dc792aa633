"""Any registered verifier as a TRL ``reward_funcs`` callable.

TRL calls ``f(prompts=..., completions=..., **columns)`` with every dataset column as a
keyword list (one entry per completion). The callable built here reads the gold ``answer``
(math) or ``tests`` (code) column (not needed by a verifier that judges without them, as
``judge`` does), and the optional ``problem_id`` / ``id`` and ``task`` columns; a row whose
``task`` names another registered verifier is judged by that one. Conversational completions
(a list of ``{"role", "content"}`` messages) are judged on the content of their last assistant
message; a conversational prompt is read as its last user message. Scores come from
:func:`verify_batch`, so the math verifier's worker processes and time limits apply here too::

    from starloop.verifiers.reward import make_reward_func
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_func("math", options={"timeout": 5})])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starloop.verifiers.records import Problem
from starloop.verifiers.registry import VerifyItem, get_verifier, needs_gold, verify_batch

RewardFunc = Callable[..., list[float]]


def _text(completion: Any, where: str) -> str:
    """The text to judge: a string, or the last assistant message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict) and "content" in completion:
        return _content(completion["content"], where)
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, dict)]
        for message in reversed(messages):
            if message.get("role", "assistant") == "assistant":
                return _content(message.get("content", ""), where)
        raise ValueError(f"{where}: conversational completion has no assistant message")
    raise TypeError(f"{where}: completion must be a str or a list of messages, got {type(completion).__name__}")


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise TypeError(f"{where}: message content must be text, got {type(content).__name__}")


def _prompt_text(prompt: Any) -> str:
    """A prompt's text: a string, or the last user message of a conversation."""
    if isinstance(prompt, Sequence) and not isinstance(prompt, str):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _content(users[-1].get("content", ""), "prompt")
    return prompt if isinstance(prompt, str) else str(prompt)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        values = [values] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return list(values)


def make_reward_func(verifier_name: str, *, options: dict[str, Any] | None = None, workers: int = 1) -> RewardFunc:
    """A TRL reward function scoring completions with verifier ``verifier_name``.

    ``options`` configure that verifier (checked now, naming any unknown key); ``workers``
    is the number of verification processes per call.
    """
    spec = get_verifier(verifier_name)
    spec.make_config(options)  # fail at construction, not in the middle of training

    def reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, **kwargs: Any) -> list[float]:
        if completions is None:
            raise ValueError(f"{reward.__name__}: TRL passes `completions`; got none")
        n = len(completions)
        answers = _column(kwargs, "answer", n)
        tests = _column(kwargs, "tests", n)
        tasks = _column(kwargs, "task", n)
        used = {str(t) if t else verifier_name for t in tasks} if tasks is not None else {verifier_name}
        if answers is None and tests is None and any(needs_gold(t) for t in sorted(used)):
            raise ValueError(
                f"{reward.__name__}: the dataset needs an 'answer' (or 'tests') column; "
                f"got columns {sorted(kwargs)}"
            )
        ids = _column(kwargs, "problem_id", n) or _column(kwargs, "id", n)
        prompt_list = list(prompts) if prompts is not None and len(prompts) == n else [""] * n
        by_task: dict[str, list[int]] = {}
        items: list[VerifyItem] = []
        for k, completion in enumerate(completions):
            pid = str(ids[k]) if ids is not None else f"row-{k}"
            task = str(tasks[k]) if tasks is not None and tasks[k] else verifier_name
            prompt = _prompt_text(prompt_list[k])
            problem = Problem(
                id=pid,
                task=task,
                prompt=prompt,
                answer=None if answers is None or answers[k] is None else str(answers[k]),
                tests=None if tests is None else tests[k],
            )
            items.append(VerifyItem(_text(completion, f"problem {pid!r}"), problem))
            by_task.setdefault(task, []).append(k)
        scores = [0.0] * n
        for task, rows in by_task.items():
            task_options = options if task == verifier_name else None
            verdicts = verify_batch(task, [items[k] for k in rows], options=task_options, workers=workers)
            for k, verdict in zip(rows, verdicts, strict=True):
                scores[k] = float(verdict.score)
        return scores

    reward.__name__ = f"{verifier_name}_reward"
    reward.__qualname__ = reward.__name__
    return reward
