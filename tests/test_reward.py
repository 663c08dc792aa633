"""Verifiers as TRL reward functions."""

from __future__ import annotations

import pytest

from starloop.verifiers.reward import make_reward_func


def test_plain_completions_and_name():
    reward = make_reward_func("math", options={"timeout": 5})
    assert reward.__name__ == "math_reward"
    scores = reward(
        prompts=["What is 1+1?", "What is 2+2?", "Half of 1?"],
        completions=[r"so \boxed{2}", "The answer is 5.", r"$\boxed{\frac{1}{2}}$"],
        answer=["2", "4", "0.5"],
        completion_ids=[[1], [2], [3]],  # TRL passes extra keyword arguments; they are ignored
        trainer_state=None,
    )
    assert scores == [1.0, 0.0, 1.0]


def test_conversational_completions_use_the_last_assistant_message():
    reward = make_reward_func("math")
    completions = [
        [{"role": "assistant", "content": r"I think \boxed{3}."}],
        [{"role": "assistant", "content": r"\boxed{7}"}, {"role": "user", "content": "sure?"},
         {"role": "assistant", "content": r"Yes: \boxed{8}"}],
    ]
    prompts = [[{"role": "user", "content": "?"}]] * 2
    assert reward(prompts=prompts, completions=completions, answer=["3", "7"]) == [1.0, 0.0]


def test_problem_id_and_task_columns():
    reward = make_reward_func("math", workers=2)
    scores = reward(
        prompts=["a", "b"],
        completions=[r"\boxed{x^2-1}", r"\boxed{2,1}"],
        answer=["(x-1)(x+1)", "1, 2"],
        problem_id=["q1", "q2"],
        task=["math", "math"],
    )
    assert scores == [1.0, 1.0]


def test_missing_answer_column_is_a_clear_error():
    reward = make_reward_func("math")
    with pytest.raises(ValueError, match="'answer'.*column"):
        reward(prompts=["a"], completions=["\\boxed{1}"], solution=["1"])


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="unknown option"):
        make_reward_func("math", options={"time_out": 3})
    with pytest.raises(KeyError, match="no verifier named"):
        make_reward_func("nope")


def test_rows_without_gold_name_the_problem():
    reward = make_reward_func("math")
    with pytest.raises(ValueError, match="'q7'"):
        reward(prompts=["a"], completions=["\\boxed{1}"], answer=[None], problem_id=["q7"])
