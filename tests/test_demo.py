"""The embedded demo: the seed model's build options, and (slow, opt-in) a shortened demo run in
which held-out accuracy must rise."""

import json

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
    """A shortened demo (two iterations instead of ten): greedy pass@1 on held-out problems rises."""
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
