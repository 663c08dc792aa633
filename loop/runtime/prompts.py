"""Prompt rendering: one function, used identically by sampling, training and evaluation.

A problem's prompt is rendered from: the model's own chat template (``prompt.chat_template``,
when the tokenizer has one), an optional system prompt (``prompt.system``), optional few-shot
exemplars (``prompt.fewshot``: earlier user/assistant turns), and the problem statement followed
by the answer-format instruction of the verifier that will judge it (``prompt.answer_format``;
e.g. the math verifier asks for ``\\boxed{}``). The sampled prompt is stored with every sample
and becomes the SFT row's prompt unchanged, and evaluation renders prompts with the same
function, so the model is trained and evaluated on exactly the context it sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def render_prompt(tokenizer, text: str, cfg: PromptConfig, answer_format: str = "") -> str:
    """The exact string the model is conditioned on for a problem whose statement is ``text``.

    With ``cfg.chat_template`` and a tokenizer that has one, the model's own chat template is
    applied (system prompt, few-shot turns, then the user turn, with the generation prompt); a
    template without a system role gets the system prompt at the top of the first user turn.
    Otherwise a plain text layout is used. Exemplar questions get the same answer-format
    instruction as the problem, so they read like the question that follows them.
    """
    shots = [(user_message(p, cfg, answer_format), c) for p, c in _shots(cfg)]
    user = user_message(text, cfg, answer_format)
    if cfg.chat_template and getattr(tokenizer, "chat_template", None):
        turns = []
        for p, c in shots:
            turns += [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
        turns.append({"role": "user", "content": user})
        if not cfg.system:
            return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        try:
            return tokenizer.apply_chat_template([{"role": "system", "content": cfg.system}, *turns],
                                                 tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja's TemplateError: "System role not supported" (Gemma, Mistral v1)
            if "system" not in str(exc).lower():
                raise
            first = {**turns[0], "content": f"{cfg.system}\n\n{turns[0]['content']}"}
            return tokenizer.apply_chat_template([first, *turns[1:]], tokenize=False, add_generation_prompt=True)
    parts = [cfg.system] if cfg.system else []
    parts += [f"{p}\n{c}" for p, c in shots]
    parts.append(user + "\n")
    return "\n\n".join(parts)


def problem_prompts(tokenizer, problems: Sequence[Problem], cfg: PromptConfig,
                    texts: Sequence[str] | None = None) -> list[str]:
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
