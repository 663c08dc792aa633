"""Stop the seed model's training at a target skill: a seed model that is no lottery.

Trained from scratch on few long chains, a small model's skill on them jumps between builds: the same
recipe with other seeds (or another thread count, which changes the float sums) ends anywhere from 1%
to 50% on held-out chains. :class:`StopAtAccuracy` makes the starting point a property of the recipe
instead: every ``check_every`` steps it decodes greedily a validation set of worked chains (the seed
split, disjoint from the rows trained on and, by construction, from the eval split), and stops the
training as soon as the share solved exactly reaches ``target``. The build then starts the loop from a
model of known strength, like a pretrained base model chosen by its benchmark score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """Validation chains: rendered prompts and their worked solutions."""

    prompts: list[str]
    solutions: list[str]


def greedy_accuracy(model, tokenizer, probe: Probe, max_new_tokens: int, batch_size: int = 128) -> float:
    """Share of ``probe`` whose greedy completion is exactly the worked solution (one rationale per chain:
    exact match is the step-checked verdict)."""
    import torch  # heavy: deferred

    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"  # generation continues every prompt at its end (a saved tokenizer may pad right)
    solved = 0
    try:
        with torch.no_grad():
            for i in range(0, len(probe.prompts), batch_size):
                enc = tokenizer(probe.prompts[i:i + batch_size], return_tensors="pt", padding=True)
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                solved += sum(t.strip() == s.strip() for t, s in zip(texts, probe.solutions[i:i + batch_size],
                                                                     strict=True))
    finally:
        model.train(was_training)
    return solved / max(1, len(probe.prompts))


class StopAtAccuracy:
    """Stops training once greedy accuracy on ``probe`` reaches ``target`` (checked every ``check_every``
    steps, after ``min_steps``); records every check in ``history``. :meth:`callback` is the transformers
    ``TrainerCallback`` that runs it."""

    def __init__(self, probe: Probe, tokenizer, target: float, *, check_every: int = 10, min_steps: int = 0,
                 max_new_tokens: int | None = None):
        self.probe, self.tokenizer, self.target = probe, tokenizer, target
        if max_new_tokens is None:  # 64, or room for the longest solution and a little more
            longest = max((len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in probe.solutions), default=0)
            max_new_tokens = max(64, longest + 8)
        self.check_every, self.min_steps, self.max_new_tokens = check_every, min_steps, max_new_tokens
        self.history: list[tuple[int, float]] = []
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs: Any):
        step = state.global_step
        if model is None or step < self.min_steps or step % self.check_every:
            return control
        acc = greedy_accuracy(model, self.tokenizer, self.probe, self.max_new_tokens)
        self.history.append((step, acc))
        if acc >= self.target:
            log.info("seed model: %.1f%% of %d validation chains solved at step %d (target %.1f%%): stopping",
                     100 * acc, len(self.probe.prompts), step, 100 * self.target)
            self.stopped_at = step
            control.should_training_stop = True
        return control

    def callback(self):
        """A ``TrainerCallback`` calling :meth:`on_step_end` (built here: transformers loads only when used)."""
        from transformers import TrainerCallback  # heavy: deferred

        stop = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs: Any):
                return stop.on_step_end(args, state, control, model=model)

        return Callback()
