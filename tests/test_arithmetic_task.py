from starloop.loop.config import DatasetConfig
from starloop.loop.tasks import load_problems
from starloop.loop.tasks.arithmetic import ArithmeticOptions, evaluate_chain, generate
from starloop.verifiers import Problem, verify_one


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
    assert len(ps) == 7 and all(p.task == "math" and p.meta["level"] == 3 for p in ps)
