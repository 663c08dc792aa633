"""The rationalization demo (configs/demo-star.yaml): its config, its seed data, and (slow, opt-in) a shortened
run in which STaR rationalization rescues failed problems and held-out pass@1 rises."""

import json
from pathlib import Path

import pytest

from starloop.loop.config import build, load_config
from starloop.loop.demo.addition_seed import AdditionSeedOptions, seed_rows
from starloop.loop.tasks import load_problems, load_solutions

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-star.yaml"


def test_star_demo_hints_as_its_seed_model_learned_and_evaluates_held_out_sums():
    cfg = load_config(str(CONFIG))
    opts = build(AdditionSeedOptions, cfg.model.builtin_options)
    assert cfg.model.path == "builtin:addition" and cfg.rationalize.enabled
    assert opts.hint_template == cfg.rationalize.hint_template and opts.hinted_fraction > 0
    train, evals = load_problems(cfg.data.train, cfg.seed), load_problems(cfg.data.eval, cfg.seed)
    assert {p.task for p in train + evals} == {"addition"}
    plain, hinted, held = seed_rows(opts, opts.seed)
    seen = {r["expr"] for r in plain + hinted + held}
    assert not {p.prompt for p in train} & {p.prompt for p in evals} and not seen & {p.prompt for p in evals}


def test_star_demo_replays_its_seed_models_seed_sums():
    cfg = load_config(str(CONFIG), ["seed=2"])
    opts = build(AdditionSeedOptions, cfg.model.builtin_options)
    plain = {r["expr"]: r["rationale"] for r in seed_rows(opts, opts.seed)[0]}
    real = load_solutions(cfg.data.real, cfg.seed)
    assert real and all(plain[p.prompt] == p.meta["solution"] for p in real)


@pytest.mark.slow
def test_shortened_star_demo_rationalizes_and_improves_held_out_accuracy(tmp_path, starloop_cache):
    """The rationalization demo for two iterations: hinted re-asks rescue failed problems (kept under the plain
    prompt) and held-out pass@1 rises."""
    from starloop.loop.driver import Driver

    cfg = load_config(str(CONFIG), ["iterations=2", "runtime.progress=false"])
    Driver(cfg, tmp_path / "run").run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["pass@1"] > rows[0]["pass@1"], rows
    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert stages["iter-001/rationalize"]["rationalized_problems"] > 0
    kept = [json.loads(x) for x in
            (tmp_path / "run" / "iter-001" / "rationalize" / "rationales.jsonl").read_text().splitlines()]
    assert kept and all("(" not in r["prompt"] and r["verdict"]["correct"] for r in kept)
