"""The rationalization demo's task (column-by-column addition) and its step verifier."""

import pytest

from starloop.loop.config import ConfigError, DatasetConfig
from starloop.loop.tasks import load_problems
from starloop.loop.tasks.addition import AdditionOptions, generate
from starloop.verifiers import Problem, verify_one
from starloop.verifiers.addition import scratchpad, steps


def test_worked_solution():
    assert scratchpad("4821", "3795") == "=482+379 c0 6\n=48+37 c1 16\n=4+3 c1 616\n=8616\n#### 8616"
    assert steps("95", "17") == ["=9+1 c1 2", "=112"]  # the last carry opens a new digit
    assert steps("7", "2") == ["=9"]


def test_generate_deterministic_disjoint_and_correct():
    o = AdditionOptions(levels=[2, 4], per_level=60)
    assert generate(o, 1) == generate(o, 1) != generate(o, 2)
    exprs = {split: {r["expr"] for seed in (0, 1)
                     for r in generate(AdditionOptions(split=split, levels=[2, 3], per_level=300), seed)}
             for split in ("train", "eval", "seed")}
    assert not exprs["train"] & exprs["eval"] and not exprs["seed"] & exprs["eval"] and not exprs["seed"] & exprs["train"]
    for r in generate(AdditionOptions(levels=[1, 3, 6], per_level=30), 0):
        a, b = r["expr"].split("+")
        assert len(a) == len(b) == r["level"] and int(r["answer"]) == int(a) + int(b)
        assert verify_one("addition", r["rationale"], Problem(r["id"], "addition", r["expr"], r["answer"])).correct


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="split"):
        generate(AdditionOptions(split="dev"), 0)
    with pytest.raises(ConfigError, match="levels"):
        generate(AdditionOptions(levels=[0]), 0)
    with pytest.raises(ConfigError, match="data.addition.options.digits"):
        load_problems(DatasetConfig(source="addition", options={"digits": 3}))


def test_adapter_problems():
    problems = load_problems(DatasetConfig(source="addition", options={"split": "eval", "levels": [5], "per_level": 20}))
    assert len(problems) == 20 and all(p.task == "addition" and p.meta["level"] == 5 for p in problems)


@pytest.mark.parametrize(("completion", "reason", "detail"), [
    ("=482+379 c0 6\n=48+37 c1 16\n=4+3 c1 616\n=8616\n#### 8616", "ok", ""),
    ("  =482+379 c0 6\n\n=48+37 c1 16\n=4+3 c1 616\n=8616\n#### 8616\n", "ok", ""),  # spacing is not checked
    ("=482+379 c0 6\n=48+37 c0 16\n=4+3 c1 616\n=8616\n#### 8616", "wrong", "line 2: expected =48+37 c1 16"),
    ("=482+379 c0 6\n=48+37 c1 16\n=8616\n#### 8616", "wrong", "line 3: expected =4+3 c1 616"),
    ("=482+379 c0 6\n=48+37 c1 16\n=4+3 c1 616\n#### 8616", "wrong", "not finished"),
    ("=482+379 c0 6\n=48+37 c1 16\n=4+3 c1 616\n=8616\n=8616\n#### 8616", "wrong", "line 5: the sum was already done"),
    ("#### 8616", "wrong", "not finished"),  # the answer alone is no worked solution
    ("=482+379 c0 6\n=48+37 c1 16\n=4+3 c1 616\n=8616\n#### 8617", "wrong", "answer 8617"),
    ("=482+379 c0 6\n=48+37 c1 16", "unparseable", ""),
    ("", "unparseable", ""),
])
def test_verifier(completion, reason, detail):
    v = verify_one("addition", completion, Problem("p", "addition", "4821+3795", "8616"))
    assert (v.reason, v.correct) == (reason, reason == "ok") and detail in v.detail


def test_verifier_rejects_a_problem_that_is_not_a_sum():
    from starloop.verifiers.addition import check_problem

    with pytest.raises(ValueError, match="not a sum"):
        check_problem(Problem("p", "addition", "48*37", "1776"))


def test_addition_seed_model_builds_once_with_hinted_rows(tmp_path):
    import json

    from starloop.loop.config import PromptConfig
    from starloop.loop.demo.addition_seed import build_addition_seed_model

    tiny = {"seed_levels": {"2": 60, "3": 20}, "hinted_levels": {"4": 16}, "hinted_fraction": 0.25,
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "epochs": 1, "batch_size": 32}
    model = build_addition_seed_model(tiny, PromptConfig(answer_format=False), tmp_path, 0)
    info = json.loads((model.parent / "seed_build.json").read_text())
    assert (model / "config.json").is_file() and info["train"]["steps"] == 4  # 80 plain + 20 + 16 hinted rows
    assert build_addition_seed_model(tiny, PromptConfig(answer_format=False), tmp_path, 0) == model
    assert len(list(tmp_path.iterdir())) == 1


def test_addition_seed_rows_hinted_only_levels_are_never_plain():
    from starloop.loop.demo.addition_seed import AdditionSeedOptions, training_pairs

    opts = AdditionSeedOptions(seed_levels={"2": 50}, hinted_levels={"3": 10}, hinted_fraction=0.2)
    plain_pairs, hinted_pairs = training_pairs(opts, 0)
    pairs = plain_pairs + hinted_pairs
    plain, hinted = [text for text, _ in plain_pairs], [text for text, _ in hinted_pairs]
    assert len(plain) == 50 and len(hinted) == 20 and all(t.startswith("(") for t in hinted)
    assert not {t.split(") ")[1] for t in hinted} - set(plain) - {t.split(") ")[1] for t in hinted[10:]}
    assert all(len(t.split("+")[0]) == 2 for t in plain)
    assert sum(len(t.split(") ")[1].split("+")[0]) == 3 for t in hinted) == 10
    for text, solution in pairs:
        answer, expr = (text[1:].split(") ") if text.startswith("(") else (None, text))
        assert solution.endswith(f"#### {int(expr.split('+')[0]) + int(expr.split('+')[1])}")
        assert answer is None or solution.endswith(f"#### {answer}")
