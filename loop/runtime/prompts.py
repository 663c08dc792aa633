"""Prompt rendering: one function, used identically by sampling, training and evaluation.

A problem's prompt is rendered from: the model's own chat template (``prompt.chat_template``,
when the tokenizer has one), an optional system prompt (``prompt.system``), optional few-shot
exemplars (``prompt.fewshot``: earlier user/assistant turns), and the problem statement followed
by the answer-format instruction of the verifier that will judge it (``prompt.answer_format``;
e.g. the math verifier asks for ``\\boxed{}``). The sampled prompt is stored with every sample
and becomes the SFT row's prompt unchanged, and evaluation renders prompts with the same
function, so the model is trained and evaluated on exactly the context it sampled from.

A rendered prompt is a :class:`Prompt`: a string that also carries the chat turns it was rendered
from, which a chat endpoint (``sampling.server.endpoint: chat``) is sent instead, to apply its own
model's chat template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starloop.loop.config import ConfigError, PromptConfig
from starloop.verifiers.records import Problem
from starloop.verifiers.registry import get_verifier


def user_message(text: str, cfg: PromptConfig, answer_format: str = "") -> str:
    """The user turn for a problem statement: the statement, then the answer-format instruction
    (on the same line after a one-line statement, on its own line after a multi-line one, e.g.
    a statement ending in a code block or a test)."""
    if not (cfg.answer_format and answer_format):
        return text
    text = text.rstrip()
    return f"{text}\n{answer_format}" if "\n" in text else f"{text} {answer_format}"


def _shots(cfg: PromptConfig) -> list[tuple[str, str]]:
    out = []
    for i, shot in enumerate(cfg.fewshot):
        missing = [k for k in ("prompt", "completion") if k not in shot]
        if missing:
            raise ConfigError(f"prompt.fewshot[{i}]: missing key(s) {missing}; each exemplar is {{prompt, completion}}")
        out.append((shot["prompt"], shot["completion"]))
    return out


class Prompt(str):
    """A rendered prompt (the exact text a model is conditioned on) that also carries the chat turns it
    was rendered from (``messages``: system, few-shot turns, the problem): what a chat endpoint is sent
    instead of the text. It is a ``str`` everywhere else (files, digests, comparisons)."""

    messages: list[dict[str, str]]

    def __new__(cls, text: str, messages: list[dict[str, str]]) -> Prompt:
        obj = super().__new__(cls, text)
        obj.messages = messages
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return Prompt, (str(self), self.messages)


def prompt_messages(prompt: str) -> list[dict[str, str]]:
    """The chat turns behind ``prompt``: its own for a :class:`Prompt`, else the text as one user message."""
    return list(getattr(prompt, "messages", None) or [{"role": "user", "content": str(prompt)}])


def prompt_turns(text: str, cfg: PromptConfig, answer_format: str = "") -> list[dict[str, str]]:
    """The chat turns of a problem whose statement is ``text``: the system prompt, few-shot exemplars
    (earlier user / assistant turns), then the user turn. Exemplar questions get the same answer-format
    instruction as the problem, so they read like the question that follows them."""
    turns = [{"role": "system", "content": cfg.system}] if cfg.system else []
    for p, c in _shots(cfg):
        turns += [{"role": "user", "content": user_message(p, cfg, answer_format)},
                  {"role": "assistant", "content": c}]
    return [*turns, {"role": "user", "content": user_message(text, cfg, answer_format)}]


def render_turns(tokenizer, turns: list[dict[str, str]], cfg: PromptConfig) -> str:
    """``turns`` as the text a model is conditioned on: the model's own chat template (with the
    generation prompt) when ``cfg.chat_template`` and the tokenizer has one, a template without a
    system role getting the system prompt at the top of the first user turn; otherwise a plain text
    layout (system prompt, exemplars, question, blank lines between)."""
    if cfg.chat_template and getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja's TemplateError: "System role not supported" (Gemma, Mistral v1)
            if turns[0]["role"] != "system" or "system" not in str(exc).lower():
                raise
            first = {**turns[1], "content": f"{turns[0]['content']}\n\n{turns[1]['content']}"}
            return tokenizer.apply_chat_template([first, *turns[2:]], tokenize=False, add_generation_prompt=True)
    system = [t["content"] for t in turns if t["role"] == "system"]
    rest = [t for t in turns if t["role"] != "system"]
    shots = [f"{q['content']}\n{a['content']}" for q, a in zip(rest[:-1:2], rest[1:-1:2], strict=True)]
    return "\n\n".join([*system, *shots, rest[-1]["content"] + "\n"])


def render_prompt(tokenizer, text: str, cfg: PromptConfig, answer_format: str = "") -> Prompt:
    """The exact string the model is conditioned on for a problem whose statement is ``text``
    (:func:`prompt_turns` rendered by :func:`render_turns`), carrying those turns for chat endpoints."""
    turns = prompt_turns(text, cfg, answer_format)
    return Prompt(render_turns(tokenizer, turns, cfg), turns)


def problem_prompts(tokenizer, problems: Sequence[Problem], cfg: PromptConfig,
                    texts: Sequence[str] | None = None) -> list[Prompt]:
    """Rendered prompts for ``problems``, each with the answer format of the verifier its task names.

    ``texts`` replaces the problem statements (STaR's hinted statements), one per problem.
    """
    formats: dict[str, str] = {}
    out = []
    for i, p in enumerate(problems):
        if p.task not in formats:
            formats[p.task] = get_verifier(p.task).answer_format
        out.append(render_prompt(tokenizer, p.prompt if texts is None else texts[i], cfg, formats[p.task]))
    return out
