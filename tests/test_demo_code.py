"""The code demo (configs/demo-code.yaml): its config, its seed data, and (slow, opt-in) a shortened
run in which held-out pass@1, judged only by the sandbox, must rise."""

import json
from pathlib import Path

import pytest

from starloop.loop.config import build, load_config
from starloop.loop.demo.code_seed import CodeSeedOptions, seed_rows
from starloop.loop.tasks import load_problems, load_solutions

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo-code.yaml"
CONTROL = CONFIG.parent / "ablations" / "code_control.yaml"


def test_code_demo_is_judged_by_the_sandbox_on_held_out_problems():
    cfg = load_config(str(CONFIG))
    assert cfg.model.path == "builtin:listfn" and not cfg.rationalize.enabled
    train, evals = load_problems(cfg.data.train, cfg.seed), load_problems(cfg.data.eval, cfg.seed)
    assert {p.task for p in train + evals} == {"code"} and all(p.tests for p in evals)
    assert not {p.prompt for p in train} & {p.prompt for p in evals}


def test_code_demo_replays_its_seed_models_seed_set():
    cfg = load_config(str(CONFIG), ["seed=3"])
    opts = build(CodeSeedOptions, cfg.model.builtin_options)
    seeds = {r["prompt"]: r["solution"] for r in seed_rows(opts, opts.seed)}
    real = load_solutions(cfg.data.real, cfg.seed)
    assert len(real) == len(seeds) and all(seeds[p.prompt] == p.meta["solution"] for p in real)
    assert not set(seeds) & {p.prompt for p in load_problems(cfg.data.eval, cfg.seed)}


def test_code_control_changes_only_what_makes_it_the_control():
    demo, control = load_config(str(CONFIG)), load_config(str(CONTROL))
    assert not control.select.selfgen and control.train == demo.train and control.model == demo.model
    assert control.data == demo.data and control.iterations == demo.iterations


@pytest.mark.slow
def test_shortened_code_demo_improves_held_out_accuracy(tmp_path, starloop_cache):
    """The code demo for two iterations: held-out pass@1 (programs run against their tests in the sandbox) rises."""
    from starloop.loop.driver import Driver

    cfg = load_config(str(CONFIG), ["iterations=2", "runtime.progress=false"])
    Driver(cfg, tmp_path / "run").run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["pass@1"] > rows[0]["pass@1"], rows


def test_code_seed_model_builds_once_and_is_cached(tmp_path):
    from starloop.loop.config import PromptConfig
    from starloop.loop.demo.code_seed import build_code_seed_model

    tiny = {"seed_levels": {"1": 60, "2": 10}, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "epochs": 1, "batch_size": 32, "task": {"ops": ["reverse", "sort", "add1"]}}
    model = build_code_seed_model(tiny, PromptConfig(answer_format=False), tmp_path, 0)
    info = json.loads((model.parent / "seed_build.json").read_text())
    assert (model / "config.json").is_file() and info["train"]["steps"] == 3 and info["options"]["task"]["ops"]
    assert build_code_seed_model(tiny, PromptConfig(answer_format=False), tmp_path, 0) == model
    assert len(list(tmp_path.iterdir())) == 1


def test_line_tokens_make_each_line_of_python_one_token_and_decode_to_the_same_text():
    from starloop.loop.demo.code_seed import line_tokens
    from starloop.loop.demo.tinymodel import build_char_tokenizer
    from starloop.loop.tasks.listfn import OPS

    opts = CodeSeedOptions(line_tokens=True, task={"ops": ["reverse", "drop_first", "evens"]})
    words = line_tokens(opts)
    assert words == ["def f(x):", " return x", " x=x[::-1]", " x=x[1:]", " x=[v for v in x if v%2==0]"]
    assert line_tokens(CodeSeedOptions(task={"ops": ["reverse"]})) == []
    assert len(line_tokens(CodeSeedOptions(line_tokens=True))) == 2 + len(OPS)

    tok = build_char_tokenizer(["f([1,2])=[2]"], words=words)
    text = "def f(x):\n x=x[1:] # [2]\n x=[v for v in x if v%2==0] # [2]\n return x"
    pieces = [tok.decode([i]) for i in tok(text, add_special_tokens=False)["input_ids"]]
    assert pieces[:3] == ["def f(x):", "\n", " x=x[1:]"] and " x=[v for v in x if v%2==0]" in pieces
    assert pieces[-1] == " return x" and "".join(pieces) == text and tok.decode(tok(text)["input_ids"]) == text
    # The rest stays one token per character, regex characters of a word included.
    assert [tok.decode([i]) for i in tok("x=x[", add_special_tokens=False)["input_ids"]] == list("x=x[")
    plain = build_char_tokenizer(["f([1,2])=[2]"])
    assert len(plain(text, add_special_tokens=False)["input_ids"]) == len(text)
