"""Prompt rendering: one function, used identically by sampling, training and evaluation."""

from __future__ import annotations

from starloop.loop.config import PromptConfig


def render_prompt(tokenizer, text: str, cfg: PromptConfig, answer_format: str = "") -> str:
    """The exact string the model is conditioned on for a problem whose statement is ``text``.

    With ``cfg.chat_template`` and a tokenizer that has one, the model's own chat template is
    applied (system prompt, few-shot turns, then the user turn, with the generation prompt).
    Otherwise a plain text layout is used.
    """
    user = f"{text} {answer_format}".rstrip() if (cfg.answer_format and answer_format) else text
    if cfg.chat_template and getattr(tokenizer, "chat_template", None):
        messages = []
        if cfg.system:
            messages.append({"role": "system", "content": cfg.system})
        for shot in cfg.fewshot:
            messages.append({"role": "user", "content": shot["prompt"]})
            messages.append({"role": "assistant", "content": shot["completion"]})
        messages.append({"role": "user", "content": user})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [cfg.system] if cfg.system else []
    parts += [f"{s['prompt']}\n{s['completion']}" for s in cfg.fewshot]
    parts.append(user + "\n")
    return "\n\n".join(parts)
