"""TRL's GRPOTrainer with starloop's verifiers as reward functions (the online counterpart of the loop).

Real components: TRL's trainer, the tiny local model generating with transformers, the math
verifier's worker processes and the code sandbox. The untrained model writes garbage, so the
rewards are mostly 0; what is checked is that the verifiers run inside the trainer, on every
completion it generates, and that their scores are what it trains on.
"""

from __future__ import annotations

import threading

import pytest

from starloop.verifiers.reward import make_reward_func


def _grpo(tiny_model, tmp_path, rows, reward_funcs):
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, max_steps=2,
                      per_device_train_batch_size=4, num_generations=2, max_completion_length=12,
                      logging_steps=1, report_to=[], save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=tiny_model, reward_funcs=reward_funcs, args=args,
                          train_dataset=datasets.Dataset.from_list(rows))
    trainer.train()
    return trainer


class _Recorder:
    """Wraps a reward function and keeps what the trainer passed (completions, columns) and got back."""

    def __init__(self, fn):
        self.fn, self.calls, self.__name__ = fn, [], fn.__name__

    def __call__(self, prompts=None, completions=None, **kwargs):
        scores = self.fn(prompts=prompts, completions=completions, **kwargs)
        self.calls.append((list(completions), scores, kwargs))
        return scores


def test_grpo_trains_with_the_math_verifier(tiny_model, tmp_path):
    rows = [{"prompt": f"Q: {a}+{b}=", "answer": str(a + b)} for a in range(1, 5) for b in range(1, 3)]
    reward = _Recorder(make_reward_func("math"))
    trainer = _grpo(tiny_model, tmp_path, rows, [reward])
    assert trainer.state.global_step == 2
    assert reward.calls and all(len(c) == len(s) and all(x in (0.0, 1.0) for x in s) for c, s, _ in reward.calls)
    logged = [h for h in trainer.state.log_history if "reward" in h or any(k.startswith("rewards/") for k in h)]
    assert logged  # the trainer logged the verifier's rewards
    # The same scores as verifying the completions directly: nothing is lost in the adapter.
    for completions, scores, columns in reward.calls:
        assert len(columns["answer"]) == len(completions)
        assert make_reward_func("math")(completions=completions, answer=columns["answer"]) == scores


def test_grpo_trains_with_the_code_verifier(tiny_model, tmp_path):
    from starloop.sandbox import select_backend

    if not select_backend().isolated:
        pytest.skip("no sandbox backend here (install bubblewrap)")
    tests = "assert add(1, 2) == 3\n"
    rows = [{"prompt": f"def add(a, b):  # {k}\n", "tests": tests, "entry_point": "add"} for k in range(8)]
    reward = _Recorder(make_reward_func("code", options={"timeout": 5}))
    trainer = _grpo(tiny_model, tmp_path, rows, [reward])
    assert trainer.state.global_step == 2
    assert reward.calls and all(len(c) == len(s) for c, s, _ in reward.calls)


def test_reward_funcs_are_safe_from_several_threads():
    """Trainers may score in threads: both verifiers' worker pools are shared safely."""
    math_reward, code_reward = make_reward_func("math"), make_reward_func("code")
    results: dict[int, list[float]] = {}

    def work(k):
        if k % 2:
            results[k] = math_reward(completions=[f"\\boxed{{{k}}}", "\\boxed{0}"], answer=[str(k), str(k)])
        else:
            results[k] = code_reward(completions=["def f():\n    return 1\n", "def f():\n    return 2\n"],
                                     tests=["assert f() == 1\n"] * 2)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == [1.0, 0.0] for k in range(6)), results
