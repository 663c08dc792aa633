"""The curriculum: the next level joins the pool once the model solves enough of the current one."""

import json

from starloop.loop.config import CurriculumConfig, load_config
from starloop.loop.driver import Driver
from starloop.loop.records import Sample
from starloop.loop.runtime.curriculum import current_level, curriculum_pool, levels
from starloop.verifiers.records import Problem, Verdict

PROBLEMS = [Problem(f"L{lv}-{i}", "arithmetic", f"p{lv}{i}", answer="0", meta={"level": lv})
            for lv in (6, 7, 8) for i in range(4)] + [Problem("syn", "arithmetic", "new")]


def _verified(solved_by_iteration):
    """A history: in iteration j the listed problems were sampled, those marked True solved."""
    def read(j):
        return [Sample(problem_id=pid, iteration=j, completion="", verdict=Verdict.ok() if ok else Verdict.fail("wrong"))
                for pid, ok in solved_by_iteration[j].items()]
    return read


def test_levels_are_ordered_easiest_first():
    assert levels(PROBLEMS, "level") == [6, 7, 8]


def test_the_next_level_joins_after_the_threshold_is_crossed():
    cfg = CurriculumConfig(enabled=True, threshold=0.5)
    history = _verified({
        1: {"L6-0": True, "L6-1": False, "L6-2": False},           # 1/3 solved: stay at 6
        2: {"L6-0": True, "L6-1": True, "L6-3": False},            # 2/3: level 7 joins
        3: {"L6-0": True, "L7-0": True, "L7-1": True},             # 2/2 of level 7: level 8 joins
        4: {"L8-0": False},
    })
    assert [current_level(PROBLEMS, cfg, it, history)[0] for it in (1, 2, 3, 4, 5)] == [0, 0, 1, 2, 2]
    pool, info = curriculum_pool(PROBLEMS, cfg, 3, history)
    assert {p.meta.get("level") for p in pool} == {6, 7, None}  # the unlevelled (synthesized) problem stays in
    assert info["level"] == 7 and info["pool"] == 9 and info["solved_share_before"] == 2 / 3
    only, _ = curriculum_pool(PROBLEMS, CurriculumConfig(enabled=True, threshold=0.5, keep_previous=False), 3, history)
    assert {p.meta.get("level") for p in only} == {7, None}


def test_an_iteration_that_sampled_none_of_the_level_does_not_count():
    cfg = CurriculumConfig(enabled=True, threshold=0.5)
    assert current_level(PROBLEMS, cfg, 3, _verified({1: {"L7-0": True}, 2: {}}))[0] == 0


def test_problems_left_without_a_pseudo_label_count_as_sampled_not_solved():
    """With the label stage, verify sees only the pseudo-labeled problems: the share is of all sampled ones."""
    cfg = CurriculumConfig(enabled=True, threshold=0.5)
    verified = _verified({1: {"L6-0": True}, 2: {"L6-0": True, "L6-1": True}})
    drawn = _verified({1: {f"L6-{i}": False for i in range(4)}, 2: {f"L6-{i}": False for i in range(3)}})
    assert current_level(PROBLEMS, cfg, 2, verified)[0] == 1  # 1 of 1 verified
    assert current_level(PROBLEMS, cfg, 3, verified, drawn) == (1, [0.25, 2 / 3])  # 1 of 4 drawn, then 2 of 3


def test_a_run_moves_up_a_level(tmp_path, tiny_overrides):
    """Threshold 0: level 3 joins the pool after iteration 1, which sampled level 2 only."""
    overrides = [*tiny_overrides, "iterations=2", "sampling.backend=transformers", "curriculum.enabled=true",
                 "curriculum.threshold=0", "data.train.options={split: train, levels: [2, 3], per_level: 6}"]
    driver = Driver(load_config(None, overrides), tmp_path / "run")
    driver.run()
    stages = driver.rd.manifest()["stages"]
    assert stages["iter-001/sample"]["curriculum"]["level"] == 2 and stages["iter-001/sample"]["problems"] == 6
    assert stages["iter-002/sample"]["curriculum"]["level"] == 3 and stages["iter-002/sample"]["problems"] == 12
    rows = [json.loads(x) for x in (driver.rd.root / "iter-001/sample/samples.jsonl").read_text().splitlines()]
    assert all("-L2-" in r["problem_id"] for r in rows)
