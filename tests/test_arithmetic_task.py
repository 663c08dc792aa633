import pytest

from starloop.loop.config import DatasetConfig
from starloop.loop.tasks import load_problems
from starloop.loop.tasks.arithmetic import ArithmeticOptions, generate
from starloop.verifiers import Problem, verify_one
from starloop.verifiers.arithmetic import evaluate_chain


def test_deterministic():
    o = ArithmeticOptions(levels=[3, 5], per_level=50)
    assert generate(o, 1) == generate(o, 1)
    assert generate(o, 1) != generate(o, 2)


def test_splits_disjoint_across_seeds_and_levels():
    exprs = {}
    for split in ("train", "eval", "seed"):
        rows = []
        for seed in (0, 1):
            rows += generate(ArithmeticOptions(split=split, levels=[2, 3, 4], per_level=300), seed)
        exprs[split] = {r["expr"] for r in rows}
    assert not exprs["train"] & exprs["eval"]
    assert not exprs["seed"] & exprs["eval"]
    assert not exprs["seed"] & exprs["train"]


def test_gold_answers_and_rationales_correct():
    for r in generate(ArithmeticOptions(levels=[2, 4, 6], per_level=40), 0):
        assert int(r["answer"]) == eval(r["expr"])  # noqa: S307 - our own generated arithmetic
        lines = r["rationale"].splitlines()
        assert len(lines) == r["level"]
        for line in lines[:-1]:
            assert eval(line.lstrip("=")) == int(r["answer"])  # noqa: S307
        p = Problem(r["id"], "math", r["expr"], r["answer"])
        assert verify_one("math", r["rationale"], p).correct


def test_nonnegative_intermediates():
    for r in generate(ArithmeticOptions(levels=[5], per_level=100), 0):
        toks = r["expr"].replace("-", " - ").replace("+", " + ").split()
        ops, nums = toks[1::2], [int(x) for x in toks[0::2]]
        assert min(evaluate_chain(nums, ops)) >= 0


def test_adapter():
    ps = load_problems(DatasetConfig(source="arithmetic", options={"split": "eval", "levels": [3], "per_level": 7}))
    assert len(ps) == 7 and all(p.task == "arithmetic" and p.meta["level"] == 3 for p in ps)
    answer_only = load_problems(DatasetConfig(source="arithmetic", options={
        "split": "eval", "levels": [3], "per_level": 7, "check_steps": False}))
    assert {p.task for p in answer_only} == {"math"} and [p.prompt for p in answer_only] == [p.prompt for p in ps]


def test_step_verifier_accepts_gold_and_rejects_lucky_answers():
    for o in (ArithmeticOptions(levels=[2, 5, 7], per_level=30, max_operand=9),
              ArithmeticOptions(levels=[3, 4], per_level=30, nonnegative=False, ops="+-*")):
        for r in generate(o, 0):
            p = Problem(r["id"], "arithmetic", r["expr"], r["answer"])
            assert verify_one("arithmetic", r["rationale"], p).correct, r
    p = Problem("x", "arithmetic", "7-1+5+0-8", "3")
    lucky = verify_one("arithmetic", "=7+4+6-7\n=10+6-7\n=16-7\n=3\n#### 3", p)
    assert lucky.reason == "wrong" and "line 1" in lucky.detail  # right answer, wrong steps
    assert verify_one("math", "=7+4+6-7\n=10+6-7\n=16-7\n=3\n#### 3", p).correct  # answer-only accepts it
    assert verify_one("arithmetic", "=6+5+0-8\n=11+0-8\n=11-8\n=3\n#### 4", p).reason == "wrong"
    assert verify_one("arithmetic", "=6+5+0-8\n=11+0-8\n=11-8\n#### 3", p).reason == "wrong"  # skipped a step
    assert verify_one("arithmetic", "=6+5+0-8\n=11+0-8", p, finish_reason="length").reason == "truncated"
    assert verify_one("arithmetic", "=6+5+0-8\n=11+0-8", p).reason == "unparseable"


def test_per_level_counts():
    rows = generate(ArithmeticOptions(levels=[3, 4], per_level=9, counts={"4": 4}), 0)
    assert [r["level"] for r in rows] == [3] * 9 + [4] * 4
    # the first problems of a level do not depend on how many are drawn
    assert rows[:9] == generate(ArithmeticOptions(levels=[3], per_level=9), 0)


def test_small_levels_raise_unless_at_most():
    # one-digit operands: the seed split holds only a few dozen two-operand chains
    o = ArithmeticOptions(split="seed", levels=[2], per_level=400, max_operand=9)
    with pytest.raises(ValueError, match="cannot draw"):
        generate(o, 0)
    rows = generate(o, 0, at_most=True)
    assert 0 < len(rows) < 400 and len({r["expr"] for r in rows}) == len(rows)
    assert all(max(map(int, r["expr"].replace("-", "+").split("+"))) <= 9 for r in rows)


def test_right_aligned_rationales_keep_the_tail_in_its_columns_and_verify():
    """``width``: every line is right-aligned, so the rest of the chain stays in the same columns from one line to
    the next (a fixed distance to copy from); both verifiers ignore the padding."""
    rows = generate(ArithmeticOptions(levels=[3, 6], per_level=20, max_operand=9, width=16), 0)
    plain = generate(ArithmeticOptions(levels=[3, 6], per_level=20, max_operand=9), 0)
    for r, p in zip(rows, plain, strict=True):
        lines = r["rationale"].split("\n")
        assert all(len(line) == 16 for line in lines)
        assert [line.strip() for line in lines] == p["rationale"].split("\n")
        for above, below in zip(lines[:-2], lines[1:-1], strict=True):
            tail = below.lstrip()[1:].lstrip("0123456789")  # the chain after the new running result
            assert above.endswith(tail) and below.endswith(tail)
        problem = Problem(r["id"], "arithmetic", r["expr"], r["answer"])
        assert verify_one("arithmetic", r["rationale"], problem).correct
        assert verify_one("math", r["rationale"], Problem(r["id"], "math", r["expr"], r["answer"])).correct
