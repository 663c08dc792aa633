"""The label stage: majority-vote pseudo-labels for train problems without answers."""

import json

import pytest

from starloop.loop.config import ConfigError, DatasetConfig, load_config
from starloop.loop.driver import Driver
from starloop.loop.errors import InputError
from starloop.loop.records import Sample
from starloop.loop.stages.label import (
    judged_by,
    labeled_problems,
    marked_answer,
    math_equivalent,
    vote,
    vote_all,
)
from starloop.loop.tasks import load_problems
from starloop.verifiers.records import Problem


def exact(pairs):
    return [a == b for a, b in pairs]


def test_majority_wins_and_counts_every_sample():
    v = vote(["4", "4", "5", None], 0.5, exact)
    assert (v.status, v.label, v.votes, v.n, v.agreement) == ("labeled", "4", 2, 4, 0.5)
    assert v.answers == {"4": 2, "5": 1}


def test_tie_gives_no_label():
    v = vote(["4", "5", "4", "5"], 0.1, exact)
    assert (v.status, v.label, v.votes) == ("tie", None, 2)


def test_agreement_threshold():
    assert vote(["4", "4", "5", "6", "7"], 0.5, exact).status == "low_agreement"
    assert vote(["4", "4", "5", "6", "7"], 0.4, exact).status == "labeled"
    # unparseable and truncated samples vote for nothing but count in the denominator
    assert vote(["4", "4", None, None, None], 0.5, exact).status == "low_agreement"


def test_no_answers():
    v = vote([None, None, " "], 0.5, exact)
    assert (v.status, v.label, v.n) == ("no_answer", None, 3)


def test_equivalent_forms_vote_together_with_the_math_verifier():
    """1/2, 0.5 and \\frac{1}{2} are one answer to the math verifier; together they outvote 3."""
    v = vote(["\\frac{1}{2}", "0.5", "3", "3", "1/2", "0.50"], 0.5, math_equivalent())
    assert v.status == "labeled" and v.votes == 4 and v.answers["3"] == 2
    assert sum(v.answers.values()) == 6 and v.label in ("\\frac{1}{2}", "0.5", "1/2", "0.50")
    # a tie only exists between groups, not between forms of one answer
    assert vote(["2", "2.0", "3", "3"], 0.5, math_equivalent()).status == "tie"


def _sample(pid, text, finish="stop"):
    return Sample(problem_id=pid, iteration=1, completion=text, finish_reason=finish)


def test_vote_all_reads_answers_like_the_math_verifier_and_ignores_truncated():
    samples = [_sample("a", "=3+4\n#### 7"), _sample("a", "The answer is \\boxed{7}."), _sample("a", "#### 8"),
               _sample("a", "#### 8", finish="length"), _sample("b", "#### 1"), _sample("b", "no idea"),
               _sample("c", "#### 9")]
    votes = vote_all(samples, ["a", "b"], 0.5, math_equivalent())
    assert set(votes) == {"a", "b"}  # c is not asked for (it has its own answer)
    assert (votes["a"].status, votes["a"].label, votes["a"].votes, votes["a"].n) == ("labeled", "7", 2, 4)
    assert (votes["b"].status, votes["b"].votes, votes["b"].n) == ("labeled", 1, 2)
    assert marked_answer("no idea") is None and marked_answer("so 5 apples") is None  # no marked final answer
    assert marked_answer("#### 5\nwait, maybe not") is None  # not stood by


def test_labeled_problems_carry_provenance_and_drop_unlabeled():
    problems = {"g": Problem("g", "math", "1+1", answer="2"), "u": Problem("u", "math", "2+2"),
                "v": Problem("v", "math", "3+3")}
    rows = [{"problem_id": "u", "status": "labeled", "label": "4", "votes": 3, "n": 4, "agreement": 0.75,
             "iteration": 2}, {"problem_id": "v", "status": "tie", "label": None, "votes": 2, "n": 4,
                               "agreement": 0.5, "iteration": 2}]
    out = labeled_problems(problems, rows)
    assert set(out) == {"g", "u"} and out["g"] is problems["g"]
    assert out["u"].answer == "4" and out["u"].meta["pseudo_label"] == {"votes": 3, "n": 4, "agreement": 0.75,
                                                                        "iteration": 2}
    assert problems["u"].answer is None  # the problems themselves never change


def test_what_a_pseudo_label_is_follows_the_verifier():
    assert judged_by(Problem("m", "math", "1+1")) == "answer"
    assert judged_by(Problem("c", "code", "write f")) == "tests"
    with pytest.raises(InputError, match="judges neither"):
        judged_by(Problem("a", "arithmetic", "not a chain"))


def test_unlabeled_data_loads_without_answers_or_solutions(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "2+2"}, {"prompt": "3+3", "answer": "6"}]))
    with pytest.raises(InputError, match="unlabeled: true"):
        load_problems(DatasetConfig(source="jsonl", path=str(path), task="math"))
    probs = load_problems(DatasetConfig(source="jsonl", path=str(path), task="math", unlabeled=True))
    assert [p.answer for p in probs] == [None, None]  # an unlabeled dataset's answers are never read
    arith = load_problems(DatasetConfig(options={"split": "train", "levels": [3], "per_level": 5}, unlabeled=True))
    assert len(arith) == 5 and all(p.answer is None and "solution" not in p.meta for p in arith)


@pytest.mark.parametrize("overrides, match", [
    (["data.train.unlabeled=true"], "set label.enabled: true"),
    (["label.enabled=true", "data.eval.unlabeled=true"], "only train data may be unlabeled"),
    (["label.enabled=true", "label.min_agreement=0"], "label.min_agreement"),
    (["label.enabled=true", "sampling.adaptive.enabled=true"], "adaptive"),
    (["label.enabled=true", "label.rewrite=arithmetic", "sampling.n=4", "label.forms=3"], "label.forms"),
    (["label.enabled=true", "label.rewrite=words"], "label.rewrite"),
    (["label.rewrite=arithmetic"], "set label.enabled: true"),
])
def test_label_config_checks(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def _vote_overrides(tiny_overrides):
    """A seed model trained long enough on one-digit 3-operand chains that it ends with "#### N" (right or wrong)."""
    return [*tiny_overrides, "model.builtin_options.epochs=10", "model.builtin_options.max_operand=9",
            "model.builtin_options.seed_levels={'2': 28, '3': 400}", "model.builtin_options.target_accuracy=null",
            "data.train.options={split: train, levels: [3], per_level: 24, max_operand: 9}",
            "data.eval.options={split: eval, levels: [3], per_level: 12, max_operand: 9}",
            "data.real.options={split: seed, levels: [3], per_level: 20, max_operand: 9}",
            "sampling.backend=transformers", "sampling.n=4", "label.enabled=true",
            "label.min_agreement=0.5", "data.train.unlabeled=true", "data.train.task=math"]


def test_loop_learns_from_its_own_majority_votes(tmp_path, tiny_overrides):
    """One iteration on a pool without answers: the label stage votes, verify checks against the votes."""
    overrides = _vote_overrides(tiny_overrides)
    driver = Driver(load_config(None, overrides), tmp_path / "run")
    metrics = driver.run()
    assert [m["iteration"] for m in metrics] == [0, 1]
    root = driver.rd.root
    stages = driver.rd.manifest()["stages"]
    assert list(stages)[:3] == ["iter-000/evaluate", "iter-001/sample", "iter-001/label"]
    labels = [json.loads(x) for x in (root / "iter-001/label/labels.jsonl").read_text().splitlines()]
    assert len(labels) == 24 and stages["iter-001/label"]["unlabeled_problems"] == 24
    assert all(r["status"] in ("labeled", "tie", "low_agreement", "no_answer") and r["n"] == 4 and r["iteration"] == 1
               for r in labels)
    labeled = {r["problem_id"]: r for r in labels if r["status"] == "labeled"}
    assert stages["iter-001/label"]["labeled"] == len(labeled)
    assert all(r["agreement"] >= 0.5 and r["votes"] == max(r["answers"].values()) for r in labeled.values())
    verified = [json.loads(x) for x in (root / "iter-001/verify/verified.jsonl").read_text().splitlines()]
    assert {s["problem_id"] for s in verified} == set(labeled)  # no label: not verified, never trained on
    assert stages["iter-001/verify"]["unlabeled_skipped"] == 4 * (24 - len(labeled))
    assert labeled and any(s["verdict"]["reason"] == "ok" for s in verified)
    for s in verified:  # correct means: agrees with the pseudo-label (plain numbers compared as text here)
        got = s["verdict"]["extracted"] or ""
        if s["verdict"]["reason"] in ("ok", "wrong") and got.lstrip("-").isdigit():
            assert (s["verdict"]["reason"] == "ok") == (got == labeled[s["problem_id"]]["label"])
    assert all(p.answer is not None for p in driver_eval_problems(overrides))


def driver_eval_problems(overrides):
    cfg = load_config(None, overrides)
    return load_problems(cfg.data.eval, cfg.seed)


def test_code_problems_without_tests_are_labeled_by_execution_agreement(tmp_path, tiny_overrides, tiny_model):
    """MBPP problems without their tests: the model writes tests, solutions and tests agree in the sandbox (or not)."""
    from .test_tasks import _fixture_loop_overrides

    overrides = [*_fixture_loop_overrides(tiny_overrides, tiny_model, "mbpp", "mbpp"), "data.train.unlabeled=true",
                 "label.enabled=true", "label.tests_n=2"]
    cfg = load_config(None, overrides)
    assert all(p.tests is None and p.answer is None for p in load_problems(cfg.data.train, cfg.seed))
    driver = Driver(cfg, tmp_path / "run")
    driver.run()
    root, stages = driver.rd.root, driver.rd.manifest()["stages"]
    info = stages["iter-001/label"]
    assert info["unlabeled_problems"] == info["code_problems"] == 4
    written = [json.loads(x) for x in (root / "iter-001/label/tests.jsonl").read_text().splitlines()]
    assert len(written) == 4 * 2 and all(w["iteration"] == 1 for w in written)
    rows = [json.loads(x) for x in (root / "iter-001/label/labels.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["n"] == 2 and r["status"] in ("labeled", "tie", "low_agreement", "no_answer")
                                  for r in rows)
    labeled = {r["problem_id"] for r in rows if r["status"] == "labeled"}
    assert all((r["tests"] is not None) == (r["problem_id"] in labeled) for r in rows)
    verified = [json.loads(x) for x in (root / "iter-001/verify/verified.jsonl").read_text().splitlines()]
    assert {s["problem_id"] for s in verified} == labeled


def test_without_the_agreement_filter_every_answer_is_its_own_label(tmp_path, tiny_overrides):
    """label.vote: own, the ablation of the vote: every sample that marks a final answer counts as verified."""
    driver = Driver(load_config(None, [*_vote_overrides(tiny_overrides), "label.vote=own"]), tmp_path / "run")
    driver.run()
    root, stages = driver.rd.root, driver.rd.manifest()["stages"]
    assert stages["iter-001/label"]["own"] == 24 and stages["iter-001/label"]["labeled"] == 0
    verified = [json.loads(x) for x in (root / "iter-001/verify/verified.jsonl").read_text().splitlines()]
    assert len(verified) == 24 * 4 == stages["iter-001/verify"]["own_label"]
    for s in verified:
        has = s["finish_reason"] != "length" and marked_answer(s["completion"]) is not None
        assert s["verdict"]["correct"] == has
    assert stages["iter-001/verify"]["verified"] == sum(s["verdict"]["correct"] for s in verified) > 0


def test_reorderings_are_the_same_chain_in_other_words():
    """Distinct orders of the same signed terms, every running result still >= 0; nothing else is rewritten."""
    import random

    from starloop.loop.tasks.arithmetic import ArithmeticOptions, generate, reorderings
    from starloop.verifiers.arithmetic import evaluate_chain, parse_chain

    rng = random.Random(0)
    rows = generate(ArithmeticOptions(split="train", levels=[6, 7], per_level=100, max_operand=9), 0)
    for r in rows:
        forms = reorderings(r["expr"], 4, rng)
        assert forms[0] == r["expr"] and len(set(forms)) == len(forms) == 4
        for text in forms:
            operands, ops = parse_chain(text)
            terms = sorted(zip(["+", *ops], operands, strict=True))
            original = parse_chain(r["expr"])
            assert terms == sorted(zip(["+", *original[1]], original[0], strict=True))
            running = evaluate_chain(operands, ops)
            assert min(running) >= 0 and str(running[-1]) == r["answer"]
    assert reorderings("3-3", 4, rng) == ["3-3"]  # the only order whose running results stay >= 0
    assert reorderings("2+3", 4, rng) == ["2+3", "3+2"]
    for fixed in ("2*3+4", "7", "x+1"):
        assert reorderings(fixed, 4, rng) == [fixed]


def test_votes_drawn_under_several_statements(tmp_path, tiny_overrides):
    """label.rewrite: each unlabeled problem's n samples are split among its reorderings, which vote together; each
    sample keeps the statement it was drawn for, and trains under it."""
    overrides = [*_vote_overrides(tiny_overrides), "label.rewrite=arithmetic", "label.forms=2"]
    driver = Driver(load_config(None, overrides), tmp_path / "run")
    driver.run()
    root, stages = driver.rd.root, driver.rd.manifest()["stages"]
    samples = [json.loads(x) for x in (root / "iter-001/sample/samples.jsonl").read_text().splitlines()]
    problems = {p.id: p.prompt for p in load_problems(driver.cfg.data.train, driver.cfg.seed)}
    by_problem: dict[str, list[dict]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    assert set(by_problem) == set(problems) and stages["iter-001/sample"]["samples"] == 24 * 4
    for pid, group in by_problem.items():
        assert [s["index"] for s in group] == [0, 1, 2, 3]
        statements = [s["prompt"] for s in group]
        assert problems[pid] in statements[0] and statements[0] == statements[1]
        assert len(set(statements)) in (1, 2)
    assert sum(len({s["prompt"] for s in group}) == 2 for group in by_problem.values()) > 12
    labels = [json.loads(x) for x in (root / "iter-001/label/labels.jsonl").read_text().splitlines()]
    assert all(r["n"] == 4 and r["forms"] == len({s["prompt"] for s in by_problem[r["problem_id"]]}) for r in labels)
    sft = [json.loads(x) for x in (root / "iter-001/select/sft.jsonl").read_text().splitlines()]
    drawn = {(s["problem_id"], s["prompt"], s["completion"]) for s in samples}
    assert all((r["problem_id"], r["prompt"], r["completion"]) in drawn for r in sft if r["source"] == "selfgen")


def test_a_rewrite_that_is_a_held_out_statement_is_never_drawn():
    import random

    from starloop.loop.stages.label import statements
    from starloop.loop.tasks.arithmetic import reorderings

    problem = Problem(id="p", task="math", prompt="1+2+3-4", answer=None)
    forms = statements(problem, reorderings, 4, random.Random(0), set())
    assert len(forms) == 4 and forms[0] == problem.prompt
    kept = statements(problem, reorderings, 4, random.Random(0), {forms[1], forms[3], problem.prompt})
    assert kept == [forms[0], forms[2]]  # the problem's own statement is never dropped (a train problem: not held out)
    labeled = Problem(id="q", task="math", prompt="1+2+3-4", answer="2")
    assert statements(labeled, reorderings, 4, random.Random(0), set()) == ["1+2+3-4"]
