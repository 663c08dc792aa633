"""The embedded demo: the seed model's build options, and (slow, opt-in) a shortened demo run in
which held-out accuracy must rise."""

import json
import re
import subprocess
import sys

import pytest

from starloop.loop.config import RationalizeConfig, build, load_config
from starloop.loop.demo.seed_model import SeedModelOptions, hinted_rows, seed_rows
from starloop.loop.tasks import load_solutions
from starloop.loop.tasks.arithmetic import ArithmeticOptions, arithmetic, generate


def test_demo_config_loads_and_evaluates_on_held_out_levels():
    cfg = load_config(None)
    assert cfg.data.eval.options["split"] == "eval" and cfg.data.train.options["split"] == "train"
    assert cfg.data.real is None or cfg.data.real.options["split"] == "seed"
    opts = build(SeedModelOptions, cfg.model.builtin_options)
    assert opts.hint_template == cfg.rationalize.hint_template


def test_seed_rows_follow_the_per_level_counts():
    opts = SeedModelOptions(seed_levels={"2": 30, "4": 5})
    rows = seed_rows(opts, 0)
    assert [r["level"] for r in rows] == [2] * 30 + [4] * 5
    assert rows == seed_rows(opts, 0)


def test_real_data_is_a_prefix_of_the_seed_set():
    """data.real (split seed) draws the same problems the seed model was trained on."""
    seed = {r["expr"] for r in seed_rows(SeedModelOptions(seed_levels={"3": 50, "4": 10}), 3)}
    real = generate(ArithmeticOptions(split="seed", levels=[3, 4], per_level=50, counts={"4": 10}), 3)
    assert len(real) == 60 and {r["expr"] for r in real} == seed


def test_hinted_rows_keep_the_full_rationale():
    opts = SeedModelOptions(seed_levels={"3": 40}, hinted_fraction=0.25)
    rows = seed_rows(opts, 0)
    hinted = hinted_rows(opts, rows, 0)
    assert len(hinted) == 10 and hinted == hinted_rows(opts, rows, 0)
    for text, r in hinted:
        assert text == RationalizeConfig().hint_template.format(prompt=r["expr"], answer=r["answer"])
        assert r["rationale"].count("\n") == r["level"] - 1
    assert hinted_rows(SeedModelOptions(seed_levels={"3": 40}), rows, 0) == []


@pytest.mark.slow
def test_shortened_demo_improves_held_out_accuracy(tmp_path, starloop_cache):
    """A shortened demo (two iterations instead of five): greedy pass@1 on held-out problems rises."""
    from starloop.loop.driver import Driver

    cfg = load_config(None, ["iterations=2", "runtime.progress=false"])
    Driver(cfg, tmp_path / "run").run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["pass@1"] > rows[0]["pass@1"], rows


def test_demo_seed_model_is_a_fixed_starting_point_whose_seed_set_is_replayed():
    """The demo builds its seed model with a fixed seed (any run seed starts from the same model),
    and data.real replays exactly that model's seed problems, whatever the run seed."""
    cfg = load_config(None, ["seed=5"])
    opts = build(SeedModelOptions, cfg.model.builtin_options)
    assert opts.seed == 0 and cfg.data.real.options["seed"] == opts.seed
    seeds = {r["expr"]: r["rationale"] for r in seed_rows(opts, opts.seed)}
    real = load_solutions(cfg.data.real, cfg.seed)
    assert real and all(seeds[p.prompt] == p.meta["solution"] for p in real)
    # Without the option the run seed draws the problems; the eval split never meets the seed set.
    eval_problems = arithmetic(cfg.data.eval, cfg.seed)
    assert [p.prompt for p in eval_problems] != [p.prompt for p in arithmetic(cfg.data.eval, 0)]
    assert not {p.prompt for p in eval_problems} & set(seeds)


def test_validation_chains_are_held_out_from_the_seed_rows():
    from starloop.loop.demo.seed_model import validation_rows

    opts = SeedModelOptions(seed_levels={"2": 30, "3": 40}, validation_size=25)
    val = validation_rows(opts, 0)
    assert len(val) == 25 and {r["level"] for r in val} == {3}
    assert not {r["expr"] for r in val} & {r["expr"] for r in seed_rows(opts, 0)}


TINY_BUILD = {"seed_levels": {"2": 200}, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "epochs": 2, "batch_size": 32, "validation_size": 20, "check_every": 3}


@pytest.mark.parametrize("target", [0.0, 1.01])
def test_seed_build_stops_at_the_target_accuracy(tmp_path, target, caplog):
    """The build checks greedy accuracy on held-out chains every `check_every` steps and stops once it
    reaches the target (0: at the first check); a target never reached trains every epoch and says so."""
    from starloop.loop.config import PromptConfig
    from starloop.loop.demo.seed_model import build_seed_model

    model = build_seed_model({**TINY_BUILD, "target_accuracy": target}, PromptConfig(answer_format=False), tmp_path, 0)
    info = json.loads((model.parent / "seed_build.json").read_text())["train"]
    checks = info["validation_accuracy"]
    assert all(0.0 <= acc <= 1.0 for _, acc in checks)
    if target == 0.0:
        assert info["stopped_at_step"] == 3 and info["steps"] == 3 and [s for s, _ in checks] == [3]
    else:
        assert info["stopped_at_step"] is None and info["steps"] == 14  # 2 epochs of 200 rows, batch 32
        assert [s for s, _ in checks] == [3, 6, 9, 12] and "never reached" in caplog.text


def test_later_options_leave_the_demo_models_cache_key_alone_and_wide_rows_are_wide():
    """Options added later stay out of the cache key at their defaults: the demo's seed model keeps the key it was
    first cached under. Wide rows have an operand above ``max_operand``; every line is padded to
    ``rationale_width``."""
    from starloop.loop.demo.seed_model import cache_key

    cfg = load_config(None)
    opts = build(SeedModelOptions, cfg.model.builtin_options)
    assert cache_key(opts, cfg.prompt, opts.seed) == "f278deea7a6e"
    assert cache_key(build(SeedModelOptions, {**cfg.model.builtin_options, "rationale_width": 16}), cfg.prompt,
                     opts.seed) != "f278deea7a6e"
    opts = SeedModelOptions(seed_levels={"3": 20}, max_operand=9, rationale_width=16, wide_levels={"3": 30},
                            wide_max_operand=19)
    rows = seed_rows(opts, 0)
    wide = rows[20:]
    assert 0 < len(wide) <= 30 and all(max(int(x) for x in re.findall(r"\d+", r["expr"])) > 9 for r in wide)
    assert all(len(line) == 16 for r in rows for line in r["rationale"].split("\n"))
    long = seed_rows(SeedModelOptions(seed_levels={"3": 20}, max_operand=9, long_levels={"7": 25}), 0)[20:]
    assert len(long) == 25 and all(r["level"] == 7 and set(re.findall(r"[-+*]", r["expr"])) == {"*"} for r in long)
    assert all(1 <= int(x) <= 3 for r in long for x in re.findall(r"\d+", r["expr"]))
    mixed = seed_rows(SeedModelOptions(seed_levels={"3": 20}, max_operand=9, long_levels={"6": 60}, long_ops="+-*"), 0)
    assert 40 < len(mixed[20:]) < 60 and all("*" in r["expr"] for r in mixed[20:])  # never a +/- chain of the task
    demo = cfg.model.builtin_options
    assert cache_key(build(SeedModelOptions, {**demo, "long_levels": {"7": 9}}), cfg.prompt, demo["seed"]) != "f278deea7a6e"
    # A build's thread count may change float sums: another count gets another key (default: the process's own).
    assert cache_key(build(SeedModelOptions, {**demo, "threads": 2}), cfg.prompt, demo["seed"]) != "f278deea7a6e"


def test_the_build_trains_on_its_thread_count_and_gives_the_process_its_own_back():
    """In a fresh interpreter (an in-process vLLM engine started by an earlier test fixes torch's thread count for
    the whole process): the block runs on the asked count, and the process gets its own back, also on an error."""
    code = """
import torch
from starloop.loop.demo.seed_model import torch_threads
before = torch.get_num_threads()
other = 2 if before != 2 else 1
seen = []
with torch_threads(other):
    seen.append(torch.get_num_threads())
with torch_threads(None):
    seen.append(torch.get_num_threads())
try:
    with torch_threads(other):
        raise RuntimeError("a failed build")
except RuntimeError:
    pass
assert seen == [other, before] and torch.get_num_threads() == before, (seen, before)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_thread_count_fixed_by_a_sampling_engine_is_said_not_hidden(monkeypatch, caplog):
    """After an in-process vLLM CPU engine binds its threads, ``torch.set_num_threads`` does nothing (vLLM replaces
    it): the build says on how many threads it runs instead."""
    import torch

    from starloop.loop.demo.seed_model import torch_threads

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # what vLLM's CPU worker installs
    fixed = torch.get_num_threads()
    with caplog.at_level("WARNING"), torch_threads(fixed + 1):
        assert torch.get_num_threads() == fixed
    assert f"runs on {fixed} torch threads, not {fixed + 1}" in caplog.text


def test_the_early_stop_decodes_long_enough_for_the_longest_solution():
    """Greedy validation decodes at least 64 tokens, more when a solution is longer (right-aligned rationales):
    a truncated decode would never match and the build would never stop early."""
    from starloop.loop.demo.target_stop import Probe, StopAtAccuracy
    from starloop.loop.demo.tinymodel import build_char_tokenizer

    tok = build_char_tokenizer()
    short = generate(ArithmeticOptions(split="seed", levels=[5], per_level=3, max_operand=9), 0)
    wide = generate(ArithmeticOptions(split="seed", levels=[5], per_level=3, max_operand=9, width=16), 0)
    assert StopAtAccuracy(Probe(["q"] * 3, [r["rationale"] for r in short]), tok, 0.5).max_new_tokens == 64
    longest = max(len(r["rationale"]) for r in wide)
    assert longest > 64
    assert StopAtAccuracy(Probe(["q"] * 3, [r["rationale"] for r in wide]), tok, 0.5).max_new_tokens == longest + 8
