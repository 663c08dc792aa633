import subprocess
import sys
import textwrap

import pytest

from starloop.loop.config import (
    MOVED,
    ConfigError,
    RunConfig,
    diff_configs,
    dump_config,
    load_config,
    load_section,
)


def test_demo_config_loads():
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.model.path == "builtin:arithmetic"
    assert cfg.train.sft.enabled and not cfg.train.dpo.enabled
    assert cfg.train.sft.args["learning_rate"] == 3e-4


def test_overrides_typed():
    cfg = load_config(None, ["train.sft.learning_rate=0.01", 'sampling.stop=["\\n\\n"]', "iterations=7",
                             "sampling.n=3"])
    assert cfg.train.sft.args["learning_rate"] == 0.01 and cfg.iterations == 7 and cfg.sampling.n == 3
    assert cfg.sampling.stop == ["\n\n"]


@pytest.mark.parametrize("text", ["3e-4", "3E-4", "1e5", "1.0e5", "+2.5e-3"])
def test_exponent_numbers_are_floats(text, tmp_path):
    """YAML 1.1 reads 3e-4 as a string; configs and --set read it as the number it is."""
    assert load_config(None, [f"train.sft.learning_rate={text}"]).train.sft.args["learning_rate"] == float(text)
    assert load_config(None, [f"select.near_dup_threshold={text}"]).select.near_dup_threshold == float(text)
    p = tmp_path / "c.yaml"
    p.write_text(f"extends: demo.yaml\ntrain:\n  dpo:\n    beta: {text}\n")
    assert load_config(p).train.dpo.args["beta"] == float(text)


def test_int_accepted_for_float():
    assert load_config(None, ["train.sft.learning_rate=1"]).train.sft.args["learning_rate"] == 1.0


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.sft.learning_rat=0.1", "train.sft.learning_rat: not a field of trl's SFTConfig (did you mean "
                                       "'learning_rate'?)"),
        ("train.dpo.bta=0.1", "did you mean 'beta'?"),
        ("train.sft.learning_rate=fast", "train.sft.learning_rate"),
        ("train.sft.max_steps=2.5", "train.sft.max_steps"),
        ("train.lora.rr=4", "not a field of peft's LoraConfig"),
        ("train.sft.output_dir=x", "train.sft.output_dir: starloop sets it"),
        ("train.dpo.deepspeed=x", "set train.launch.deepspeed"),
        ("train.sft.completion_only_loss=false", "completion only"),
        ("trian.lr=0.1", "trian"),
        ("sampling.temprature=0.5", "did you mean 'temperature'?"),
        ("sampling.n=2.5", "sampling.n"),
        ("sampling.backend=tgi", "sampling.backend"),
        ("rationalize.enabled=maybe", "rationalize.enabled"),
        ("select.real_fraction=1.5", "select.real_fraction"),
        ("verify.options={math: {nonsense: 1}}", "nonsense"),
        ("verify.options={nope: {}}", "nope"),
        ("eval.k=[1, 99]", "eval.k"),
        ("noequals", "key=value"),
        ('eval.k=[1,', "--set eval.k: the value '[1,' is not valid YAML"),
        ("train.sft.enabled=false", "enable at least one"),
        ("pairs.per_prompt=0", "pairs.per_prompt"),
        ("train.dpo.loss_weights=[1.0, 2.0]", "train.dpo.loss_weights"),
        ("train.dpo.loss_type=[]", "train.dpo.loss_type"),
        ("train.dpo.beta=0", "train.dpo.beta"),
        ("train.dpo=true", "train.dpo: a section now; set train.dpo.enabled: true"),
    ],
)
def test_bad_keys_and_types_are_named(override, needle):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert needle in str(exc.value)


@pytest.mark.parametrize("old, new", [("train.lr", "train.sft.learning_rate"), ("train.dpo_beta", "train.dpo.beta"),
                                      ("train.batch_size", "train.sft.per_device_train_batch_size"),
                                      ("train.pairs_per_prompt", "pairs.per_prompt"),
                                      ("train.num_processes", "train.launch.num_processes"),
                                      ("train.report_to", "runtime.report_to")])
def test_old_flat_keys_name_their_new_place(old, new, tmp_path):
    assert MOVED[old].startswith(new)
    with pytest.raises(ConfigError, match=f"{old}: this key moved to {new}"):
        load_config(None, [f"{old}=1"])
    p = tmp_path / "old.yaml"
    section, key = old.split(".")
    p.write_text(f"{section}:\n  {key}: 1\n")
    with pytest.raises(ConfigError, match=f"{old}: this key moved to {new}"):
        load_config(p)


def test_dpo_alone_and_sections_round_trip():
    cfg = load_config(None, ["train.sft.enabled=false", "train.dpo.enabled=true", "train.dpo.loss_type=[sigmoid, sft]",
                             "train.dpo.loss_weights=[1.0, 0.5]", "train.lora.enabled=true", "train.lora.r=4"])
    assert not cfg.train.sft.enabled and cfg.train.dpo.args["loss_type"] == ["sigmoid", "sft"]
    assert cfg.train.lora.args == {"r": 4}
    again = load_config(None, [])  # the dumped config is flat TRL keys beside `enabled`
    dumped = dump_config(cfg)
    assert "loss_type:\n    - sigmoid\n    - sft" in dumped and "args" not in dumped
    assert dumped != dump_config(again)


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("extends: demo.yaml\nname: base\nsampling: {n: 3, stop: ['x']}\n")
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../base.yaml\nname: child\nsampling: {stop: ['y']}\n")
    cfg = load_config(child)
    demo = load_config()
    assert cfg.name == "child" and cfg.sampling.n == 3 and cfg.sampling.stop == ["y"]
    assert cfg.sampling.max_tokens == demo.sampling.max_tokens and cfg.train == demo.train
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "dangling.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(tmp_path / "dangling.yaml")


def test_ablations_are_the_demo_plus_their_differences():
    demo = load_config().to_dict()
    for name, changed in [("no_rationalization", {"name", "rationalize.enabled"}),
                          ("unfiltered", {"name", "select.include_unverified"}),
                          ("control", {"name", "sampling.problems_per_iteration", "rationalize.enabled",
                                       "select.selfgen", "data.real.options.levels", "data.real.options.counts"})]:
        cfg = load_config(f"configs/ablations/{name}.yaml").to_dict()
        keys = {d.split(":")[0] for d in diff_configs(demo, cfg)}
        assert keys == changed, name
    for name in ("sft_dpo", "sft_rpo", "rpo_only"):  # preference training: only the trainer and the pairs change
        cfg = load_config(f"configs/ablations/{name}.yaml")
        keys = {d.split(":")[0] for d in diff_configs(demo, cfg.to_dict())}
        assert keys - {"name"} and all(k.startswith(("train.", "pairs.")) for k in keys - {"name"}), name
        assert cfg.train.dpo.enabled and cfg.train.sft.enabled == (name != "rpo_only")
        assert ("sft" in cfg.train.dpo.args["loss_type"]) == (name != "sft_dpo")


def test_shipped_configs_are_found_from_anywhere(tmp_path):
    code = ("from starloop.loop.config import load_config, config_file;"
            "c = load_config('configs/ablations/control.yaml'); print(c.name);"
            "print(config_file('configs/deepspeed/zero3.json').name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["demo-control", "zero3.json"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_unknown_key_in_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nsampling:\n  temprature: 0.5\n")
    with pytest.raises(ConfigError, match="sampling.temprature"):
        load_config(p)


def test_engine_batch_must_be_positive(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nsampling:\n  max_num_seqs: 0\n")
    with pytest.raises(ConfigError, match="sampling.max_num_seqs: must be >= 1"):
        load_config(p)
    p.write_text("name: x\nsampling:\n  max_num_seqs: 2048\n")
    assert load_config(p).sampling.max_num_seqs == 2048


def test_diff_configs():
    assert diff_configs({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c: 2 -> 3"]


def test_load_section_reads_one_section_and_refuses_others():
    assert load_section("pairs", None, ["pairs.per_prompt=3"]).per_prompt == 3
    assert load_section("verify", None, ["verify.options.math.timeout=2"]).options == {"math": {"timeout": 2}}
    with pytest.raises(ConfigError, match="reads only the verify section"):
        load_section("verify", None, ["sampling.n=2"])
    with pytest.raises(ConfigError, match="verify.options.math"):
        load_section("verify", None, ["verify.options.math.nonsense=1"])


def test_verify_and_verifiers_never_import_trl(tmp_path):
    """The verifiers (and `starloop verify`) stay usable without the training stack."""
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"completion": "\\\\boxed{4}", "answer": "4"}\n')
    code = textwrap.dedent(f"""
        import sys
        from starloop.loop.cli.main import main
        assert main(["verify", "--verifier", "math", "--input", {str(inp)!r}, "--output", {str(tmp_path / 'o')!r},
                     "--set", "verify.options.math.timeout=3"]) == 0
        assert main(["verifiers"]) == 0
        import starloop.verifiers.reward
        heavy = sorted(m for m in ("trl", "vllm", "deepspeed", "peft", "torch", "transformers") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout
