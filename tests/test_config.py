import pytest

from starloop.loop.config import ConfigError, RunConfig, diff_configs, load_config


def test_demo_config_loads():
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.model.path == "builtin:arithmetic"


def test_overrides_typed():
    cfg = load_config(None, ["train.lr=0.01", 'sampling.stop=["\\n\\n"]', "iterations=7", "sampling.n=3"])
    assert cfg.train.lr == 0.01 and cfg.iterations == 7 and cfg.sampling.n == 3
    assert cfg.sampling.stop == ["\n\n"]


def test_int_accepted_for_float():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.lrr=0.1", "train.lrr"),
        ("trian.lr=0.1", "trian"),
        ("train.lr=fast", "train.lr"),
        ("sampling.n=2.5", "sampling.n"),
        ("sampling.backend=tgi", "sampling.backend"),
        ("rationalize.enabled=maybe", "rationalize.enabled"),
        ("select.real_fraction=1.5", "select.real_fraction"),
        ("verify.options={math: {nonsense: 1}}", "nonsense"),
        ("verify.options={nope: {}}", "nope"),
        ("eval.k=[1, 99]", "eval.k"),
        ("noequals", "key=value"),
    ],
)
def test_bad_keys_and_types_are_named(override, needle):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert needle in str(exc.value)


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


def test_diff_configs():
    assert diff_configs({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c: 2 -> 3"]


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.pairs_per_prompt=0", "train.pairs_per_prompt"),
        ("train.dpo_loss_weights=[1.0]", "train.dpo_loss_weights"),
        ("train.dpo_loss_type=[]", "train.dpo_loss_type"),
        ("train.dpo_beta=0", "train.dpo_beta"),
    ],
)
def test_training_checks_before_work(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(None, ["train.dpo_loss_type=[sigmoid, sft]", override] if "weights" in override else [override])
