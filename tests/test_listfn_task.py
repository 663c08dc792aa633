"""The code demo's task: list functions specified by examples (loop/tasks/listfn.py)."""

import pytest

from starloop.loop.config import ConfigError, DatasetConfig
from starloop.loop.tasks import load_problems
from starloop.loop.tasks.listfn import ListFnOptions, apply, generate, program, well_posed
from starloop.verifiers import verify_one


def test_deterministic():
    o = ListFnOptions(levels=[1, 2], per_level=40)
    assert generate(o, 1) == generate(o, 1)
    assert generate(o, 1) != generate(o, 2)


def test_splits_disjoint_across_seeds_and_levels():
    prompts = {}
    for split in ("train", "eval", "seed"):
        rows = []
        for seed in (0, 1):
            rows += generate(ListFnOptions(split=split, levels=[1, 2, 3], per_level=150), seed)
        prompts[split] = {r["prompt"] for r in rows}
    assert not prompts["train"] & prompts["eval"]
    assert not prompts["seed"] & prompts["eval"]
    assert not prompts["seed"] & prompts["train"]


def test_reference_programs_pass_their_tests_in_the_sandbox_and_wrong_ones_fail():
    rows = generate(ListFnOptions(split="eval", levels=[1, 2, 3], per_level=4), 0)
    problems = load_problems(DatasetConfig(source="listfn", options={"split": "eval", "levels": [1, 2, 3],
                                                                     "per_level": 4}))
    assert [p.prompt for p in problems] == [r["prompt"] for r in rows]
    for r, p in zip(rows, problems, strict=True):
        assert p.task == "code" and p.meta["entry_point"] == "f" and p.meta["level"] == r["level"]
        assert p.tests.count("assert ") == 5 and r["solution"].count("\n x=") == r["level"]
        assert verify_one("code", r["solution"], p).correct
        # the identity is never right: every function changes its shown inputs
        wrong = verify_one("code", "def f(x):\n return x", p)
        assert not wrong.correct and wrong.reason == "wrong"
    garbage = verify_one("code", "def f(x):\n x=x[", problems[0])
    assert not garbage.correct and garbage.reason in {"unparseable", "wrong", "error"}


def test_problems_are_well_posed():
    for r in generate(ListFnOptions(split="train", levels=[2], per_level=60), 0):
        shown = [eval(x.split("=")[0][2:-1]) for x in r["prompt"].split("; ")]  # noqa: S307 - our own lists
        assert len(shown) == 3 and all(apply(tuple(r["ops"]), x) for x in shown)
    ops = ("reverse", "sort", "add1", "add2", "add3")
    # reverse then sort is sort: reducible to one operation
    assert not well_posed(("reverse", "sort"), [[3, 1, 2]], [[5, 4]], ops)
    # add1 then add2 is add3
    assert not well_posed(("add1", "add2"), [[3, 1, 2]], [[5, 4]], ops)
    # a sorted input cannot tell sort from nothing-but-add: ambiguous on the hidden unsorted input
    assert not well_posed(("sort", "add1"), [[1, 2, 3]], [[3, 1]], ops)
    assert well_posed(("sort", "add1"), [[3, 1, 2]], [[5, 4]], ops)
    assert program(("sort", "add1")) == "def f(x):\n x=sorted(x)\n x=[v+1 for v in x]\n return x"


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown"):
        ListFnOptions(ops=["reverse", "rotate"])
    with pytest.raises(ConfigError, match="min_len"):
        ListFnOptions(min_len=5, max_len=3)
    with pytest.raises(ConfigError, match="split"):
        generate(ListFnOptions(split="test"), 0)
