"""Self-Instruct synthesis: the filters (planted near duplicates and contaminated proposals) and a loop run
whose pool grows."""

import json

import pytest
from rouge_score import rouge_scorer

from starloop.loop.config import ConfigError, load_config
from starloop.loop.driver import Driver
from starloop.loop.runtime.report import iteration_rows, table_lines
from starloop.loop.runtime.synthesis import (
    FILTERS,
    Screen,
    grams,
    in_band,
    parse_problem,
    proposal_prompt,
    tokens,
)
from starloop.verifiers.records import Problem

POOL = ["3+4-2", "5-1+7", "8-2+1"]
HELD_OUT = ["6+2-3-1", "9-4+4"]


def test_tokens_keep_symbols_so_reordered_chains_differ():
    assert tokens("3+4-2") == ["3", "+", "4", "-", "2"]
    assert tokens("What is 12+x?") == ["what", "is", "1", "2", "+", "x", "?"]
    default = rouge_scorer.RougeScorer(["rougeL"]).score("3+4-2", "3-4+2")["rougeL"].fmeasure
    assert default == 1.0  # rouge-score's own tokenizer drops the operators
    assert Screen(["3+4-2"], []).novelty("3-4+2") == pytest.approx(0.6)


def test_parse():
    assert parse_problem("arithmetic", "Q: 3 + 4 - 2\n=7-2") == "3+4-2"
    assert parse_problem("arithmetic", "=7-2\n#### 5") is None
    assert parse_problem("arithmetic", "") is None
    assert parse_problem("text", "Problem: What is 2+3?\n\nSolution: 5") == "What is 2+3?"
    assert proposal_prompt("{examples}Q: ", "Q: {prompt}\n", ["1+2", "3-1"]) == "Q: 1+2\nQ: 3-1\nQ: "


def test_planted_duplicates_and_contaminated_proposals_are_rejected():
    screen = Screen(list(POOL), HELD_OUT, kind="arithmetic", min_tokens=3, max_tokens=9, decontam_n=5)
    planted = {
        "Q: 3+4-2": "novelty",            # in the pool already
        "3+4-1": "novelty",               # a near duplicate: ROUGE-L 0.8 against 3+4-2
        "9-4+4\n": "decontamination",     # a held-out problem
        "hello there": "parse",
        "1+2+3+4+5+6": "length",          # 11 tokens
        "3-4+2": None,                    # operators swapped: new
        "7-5+3-1": None,
        "7-5+3-1 ": "novelty",            # a duplicate of a proposal accepted just before
        "1+6+2-3-1": "decontamination",   # holds a held-out 5-gram (6+2-3-1 is 7 tokens: its 5-grams)
    }
    for proposal, why in planted.items():
        assert screen.check(proposal)[1] == why, proposal
    assert screen.pool[-2:] == ["3-4+2", "7-5+3-1"]
    assert screen.counts == {"parse": 1, "length": 1, "novelty": 3, "decontamination": 2, "judge": 0, "difficulty": 0}
    assert set(screen.counts) == set(FILTERS)


def test_prose_decontamination_by_13_grams():
    held = "A train leaves the station at noon and travels at sixty miles per hour toward the city."
    screen = Screen(["How many apples are left?"], [held], kind="text")
    copied = "Suppose a train leaves the station at noon and travels at sixty miles per hour toward the coast."
    assert screen.check(copied)[1] == "decontamination"
    assert screen.check("A bus leaves at nine and drives at forty miles per hour; when does it arrive?")[1] is None
    assert len(grams(held, 13)) == len(tokens(held)) - 12


def test_difficulty_band_is_strict():
    assert not in_band(0.0, 0.0, 1.0) and not in_band(1.0, 0.0, 1.0) and not in_band(None, 0.0, 1.0)
    assert in_band(0.5, 0.0, 1.0) and not in_band(0.5, 0.5, 1.0)


def test_synthesize_needs_the_label_stage():
    with pytest.raises(ConfigError, match="label.enabled"):
        load_config(None, ["synthesize.enabled=true"])
    with pytest.raises(ConfigError, match="examples"):
        load_config(None, ["synthesize.enabled=true", "label.enabled=true", "synthesize.template='Q: '"])


def test_the_pool_grows_with_synthesized_problems(tmp_path, tiny_overrides):
    """Two iterations: the model (taught to propose chains by its seed build) proposes, the filters screen,
    accepted problems are sampled, labeled and trained on in the next iteration; the report shows the pool."""
    proposal = ["synthesize.template='{examples}Q: '", 'synthesize.example="Q: {prompt}\\n"']
    overrides = [*tiny_overrides, "iterations=2", "model.builtin_options.epochs=10", "model.builtin_options.max_operand=9",
                 "model.builtin_options.seed_levels={'2': 28, '3': 400}", "model.builtin_options.target_accuracy=null",
                 "model.builtin_options.proposal_rows=300", "model.builtin_options.proposal_k=3",
                 "data.train.options={split: train, levels: [3], per_level: 24, max_operand: 9}",
                 "data.eval.options={split: eval, levels: [3], per_level: 12, max_operand: 9}",
                 "data.real.options={split: seed, levels: [3], per_level: 20, max_operand: 9}",
                 "sampling.backend=transformers", "sampling.n=4", "label.enabled=true", "synthesize.enabled=true",
                 "synthesize.kind=arithmetic", "synthesize.proposals=24", "synthesize.k=3", "synthesize.stop=[\"\\n\"]",
                 "synthesize.n_solutions=4", "synthesize.decontam_n=5", "synthesize.max_new_tokens=16", *proposal]
    driver = Driver(load_config(None, overrides), tmp_path / "run")
    driver.run()
    root, stages = driver.rd.root, driver.rd.manifest()["stages"]
    first = stages["iter-001/synthesize"]
    assert list(stages)[1] == "iter-001/synthesize" and first["proposals"] == 24
    records = [json.loads(x) for x in (root / "iter-001/synthesize/proposals.jsonl").read_text().splitlines()]
    assert len(records) == 24 and all(r["rejected_by"] in (None, *FILTERS) for r in records)
    assert sum(r["rejected_by"] is None for r in records) == first["accepted"] > 0
    assert {f: sum(r["rejected_by"] == f for r in records) for f in FILTERS} == first["rejected"]
    accepted = [Problem.from_dict(json.loads(x)) for x in (root / "iter-001/synthesize/accepted.jsonl").read_text().splitlines()]
    assert all(p.answer is None and p.id.startswith("syn-001-") and 0 < p.meta["synthesized"]["pass_rate"] < 1
               and len(p.meta["synthesized"]["shown"]) == 3 for p in accepted)
    assert first["pool_size"] == 24 + len(accepted)
    # iteration 2 samples the grown pool, and the label stage votes on the new problems
    sampled = {json.loads(x)["problem_id"] for x in (root / "iter-002/sample/samples.jsonl").read_text().splitlines()}
    assert {p.id for p in accepted} <= sampled
    assert stages["iter-002/label"]["unlabeled_problems"] == len(accepted)
    assert stages["iter-002/synthesize"]["pool_size"] >= first["pool_size"]
    header, body = table_lines(iteration_rows(driver.rd))
    pool = header.index("pool")
    assert [row[pool] for row in body] == ["-", str(first["pool_size"]), str(stages["iter-002/synthesize"]["pool_size"])]


def test_a_judge_that_cannot_grade_passes_no_proposal(tmp_path):
    """synthesize.judge: proposals the judge does not pass are rejected and counted; a judge that cannot be
    reached grades nothing, so nothing passes (and the run goes on)."""
    import socket

    from starloop.loop.stages.synthesize import judged

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    options = {"base_url": f"http://127.0.0.1:{port}/v1", "model": "j", "max_retries": 0, "cache": None}
    cands = [Problem(f"syn-001-{j:04d}", "math", f"What is {j}+1?") for j in range(2)]
    records = [{"proposal": j, "rejected_by": None} for j in range(2)]
    counts = dict.fromkeys(FILTERS, 0)
    assert judged(options, cands, ["Q: 1+1\nQ: ", "Q: 2+2\nQ: "], counts, records) == []
    assert counts["judge"] == 2 and all(r["rejected_by"] == "judge" and r["judge"]["reason"] == "error" for r in records)
    with pytest.raises(ConfigError, match="synthesize.judge"):
        load_config(None, ["synthesize.enabled=true", "label.enabled=true", "synthesize.judge={no_such_key: 1}"])
