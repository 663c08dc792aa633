"""Training on CPU with tiny local models: SFT, DPO, DPO + NLL, LoRA; `starloop train`; a `starloop pairs`
dataset in TRL's own DPOTrainer; SFT then DPO inside the loop."""

import json

import pytest

from starloop.loop.cli.main import main
from starloop.loop.config import DPOSection, LoraSection, SFTSection, TrainConfig, load_config
from starloop.loop.records import GenParams
from starloop.loop.runtime.samplers import TransformersSampler, VLLMSampler
from starloop.loop.runtime.trainers import train_dpo, train_sft
from starloop.verifiers.records import Verdict
from starloop.verifiers.registry import register_verifier

from .conftest import require_vllm

PROMPTS = [f"Q: {a}+{b}\nA: " for a in range(4) for b in range(2)]
# Learnable on purpose: the same preferred / dispreferred answer for every prompt.
DPO_ROWS = [{"prompt": p, "chosen": "yes", "rejected": "no"} for p in PROMPTS]
SFT_ROWS = [{"prompt": p, "completion": "yes"} for p in PROMPTS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models train fastest on one thread; on a shared machine several threads wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BASE = {"per_device_train_batch_size": 4, "logging_steps": 1, "max_length": 64, "lr_scheduler_type": "constant",
        "seed": 0, "data_seed": 0, "gradient_checkpointing": False}


def _cfg(sft=None, dpo=None, lora=None) -> TrainConfig:
    """TRL fields for both trainers, on top of small settings for tiny models."""
    return TrainConfig(sft=SFTSection(True, {**BASE, **(sft or {})}), dpo=DPOSection(True, {**BASE, **(dpo or {})}),
                       lora=LoraSection(lora is not None, lora or {}))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def dpo_trained(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo")
    stats = train_dpo(tiny_model, DPO_ROWS, _cfg(dpo={"learning_rate": 1e-2, "num_train_epochs": 5}), out)
    return stats, str(out / "model")


def test_sft_loss_falls(tiny_model, tmp_path):
    stats = train_sft(tiny_model, SFT_ROWS, _cfg(sft={"learning_rate": 1e-2, "num_train_epochs": 5}), tmp_path)
    assert stats["steps"] == 10 and stats["tokens"] > 0
    assert stats["last_loss"] < 0.5 * stats["first_loss"]
    assert (tmp_path / "model" / "config.json").exists()


def test_dpo_loss_falls(dpo_trained):
    stats, model = dpo_trained
    assert stats["steps"] == 10 and stats["first_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at the start
    assert stats["last_loss"] < 0.5 * stats["first_loss"] and stats["reward_accuracy"] == 1.0
    assert stats["reward_margin"] > 0 and stats["tokens"] > 0


def test_dpo_plus_nll_loss_falls(tiny_model, tmp_path):
    cfg = _cfg(dpo={"learning_rate": 1e-2, "num_train_epochs": 5, "loss_type": ["sigmoid", "sft"],
                    "loss_weights": [1.0, 0.5]})
    stats = train_dpo(tiny_model, DPO_ROWS, cfg, tmp_path)
    assert stats["loss_type"] == ["sigmoid", "sft"] and stats["first_loss"] > 0.6931 + 0.5  # the NLL term is in it
    assert stats["last_loss"] < 0.5 * stats["first_loss"]


def _generates(sampler):
    out = sampler.generate(PROMPTS[:2], GenParams(n=2, temperature=1.0, max_tokens=4))
    assert [len(g) for g in out] == [2, 2] and all(x.finish_reason in ("stop", "length") for g in out for x in g)


def test_trained_checkpoint_loads_in_transformers_sampler(dpo_trained):
    from starloop.loop.config import SamplingConfig

    s = TransformersSampler(dpo_trained[1], SamplingConfig(batch_size=2), seed=0)
    try:
        _generates(s)
    finally:
        s.close()


@require_vllm
def test_trained_checkpoint_loads_in_vllm_sampler(dpo_trained):
    from starloop.loop.config import SamplingConfig

    s = VLLMSampler(dpo_trained[1], SamplingConfig(), seed=0)
    try:
        _generates(s)
    finally:
        s.close()


def test_lora_sft_saves_a_merged_checkpoint(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    lora = {"r": 4, "lora_alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    stats = train_sft(tiny_model, SFT_ROWS, _cfg(sft={"learning_rate": 5e-2, "num_train_epochs": 2}, lora=lora), tmp_path)
    model_dir = tmp_path / "model"
    assert stats["steps"] == 4 and not (model_dir / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    merged = AutoModelForCausalLM.from_pretrained(model_dir)  # a plain model: the adapter is merged in
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base.state_dict()[name], merged.state_dict()[name])
    assert torch.equal(base.state_dict()["model.layers.0.mlp.up_proj.weight"], merged.state_dict()["model.layers.0.mlp.up_proj.weight"])


def test_pairs_dataset_trains_in_trl_unchanged(tiny_model, tmp_path):
    import datasets
    from trl import DPOConfig, DPOTrainer

    rows = []
    for i, p in enumerate(PROMPTS):
        for text, reason in [("=5\n#### 5", "ok"), ("=6\n#### 6", "wrong"), ("??", "unparseable")]:
            rows.append({"id": f"p{i}", "prompt": p, "completion": text, "finish_reason": "stop",
                         "verdict": Verdict(reason == "ok", float(reason == "ok"), reason).to_dict()})
    _write(tmp_path / "verified.jsonl", rows)
    assert main(["pairs", "--input", str(tmp_path / "verified.jsonl"), "--output", str(tmp_path / "pairs")]) == 0
    ds = datasets.load_dataset(str(tmp_path / "pairs"), split="train")
    args = DPOConfig(output_dir=str(tmp_path / "trl"), max_steps=2, per_device_train_batch_size=2, bf16=False,
                     use_cpu=True, report_to="none", save_strategy="no", max_length=64)
    trainer = DPOTrainer(model=tiny_model, args=args, train_dataset=ds)
    assert trainer.train().global_step == 2


# ---------------------------------------------------------------------------------------------- starloop train


def test_train_cli_dpo_and_sft(tiny_model, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    datasets.Dataset.from_list(DPO_ROWS).save_to_disk(str(tmp_path / "prefs"))
    def small(kind):
        return ["--set", f"train.{kind}.max_steps=2", "--set", f"train.{kind}.per_device_train_batch_size=2",
                "--set", f"train.{kind}.max_length=64", "--set", f"train.{kind}.gradient_checkpointing=false"]

    assert main(["train", "--kind", "dpo", "--model", tiny_model, "--data", str(tmp_path / "prefs"),
                 "--output", str(tmp_path / "dpo"), *small("dpo"), "--set", "train.dpo.loss_type=[sigmoid, sft]"]) == 0
    rec = json.loads((tmp_path / "dpo" / "train_stats.json").read_text())
    assert rec["stats"]["steps"] == 2 and rec["train"]["dpo"]["loss_type"] == ["sigmoid", "sft"]
    assert (tmp_path / "dpo" / "model" / "config.json").exists()

    pq.write_table(pa.Table.from_pylist(SFT_ROWS), tmp_path / "sft.parquet")
    assert main(["train", "--kind", "sft", "--model", str(tmp_path / "dpo" / "model"), "--data",
                 str(tmp_path / "sft.parquet"), "--output", str(tmp_path / "sft"), *small("sft")]) == 0
    assert (tmp_path / "sft" / "model" / "config.json").exists()
    # Without --config the trainers get TRL's defaults and the --set keys, nothing of the demo's.
    sft_section = json.loads((tmp_path / "sft" / "train_stats.json").read_text())["train"]["sft"]
    assert "learning_rate" not in sft_section and sft_section["max_steps"] == 2

    msgs = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "yes"}]} for p in PROMPTS]
    _write(tmp_path / "chat.jsonl", msgs)
    assert main(["train", "--kind", "sft", "--model", tiny_model, "--data", str(tmp_path / "chat.jsonl"),
                 "--output", str(tmp_path / "chat"), *small("sft")]) == 0
    assert json.loads((tmp_path / "chat" / "train_stats.json").read_text())["stats"]["steps"] == 2


def test_train_cli_takes_trls_conversational_formats(tiny_model, tmp_path):
    # The examples of TRL's dataset-formats guide: conversational prompt-completion and
    # conversational preference rows (the tiny model's tokenizer has a chat template).
    sft = [{"prompt": [{"role": "user", "content": "What color is the sky?"}],
            "completion": [{"role": "assistant", "content": "It is blue."}]}] * 4
    dpo = [{"prompt": [{"role": "user", "content": "What color is the sky?"}],
            "chosen": [{"role": "assistant", "content": "It is blue."}],
            "rejected": [{"role": "assistant", "content": "It is green."}]}] * 4
    _write(tmp_path / "sft.jsonl", sft)
    _write(tmp_path / "dpo.jsonl", dpo)
    for kind in ("sft", "dpo"):
        small = [x for k, v in (("max_steps", 2), ("per_device_train_batch_size", 2), ("max_length", 64),
                                ("gradient_checkpointing", "false")) for x in ("--set", f"train.{kind}.{k}={v}")]
        assert main(["train", "--kind", kind, "--model", tiny_model, "--data", str(tmp_path / f"{kind}.jsonl"),
                     "--output", str(tmp_path / kind), *small]) == 0
        stats = json.loads((tmp_path / kind / "train_stats.json").read_text())["stats"]
        assert stats["steps"] == 2 and stats["train_loss"] > 0


@pytest.mark.parametrize(
    "kind, data, extra, needle",
    [
        ("dpo", [{"prompt": "a", "chosen": "b"}], [], "missing field(s) ['rejected']"),
        ("dpo", [{"prompt": "a", "chosen": "b", "rejected": 3}], [], "'rejected' must be a string"),
        ("dpo", [{"prompt": [{"role": "user", "content": "a"}], "chosen": "b", "rejected": "c"}], [],
         "mixes strings and message lists"),
        ("dpo", [{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "user", "content": "b"}],
                  "rejected": [{"role": "assistant", "content": "c"}]}], [], "assistant messages only"),
        ("sft", [{"prompt": [{"role": "user"}], "completion": [{"role": "assistant", "content": "b"}]}], [],
         "list of {role, content} messages"),
        ("sft", [{"prompt": "a"}], [], "missing field(s) ['completion']"),
        ("sft", [{"messages": [{"role": "user", "content": "a"}]}], [], "ending with an assistant message"),
        ("sft", [], [], "no rows"),
        ("sft", [{"prompt": "a", "completion": "b"}], ["--set", "sampling.n=3"], "only the train section"),
        ("sft", [{"prompt": "a", "completion": "b"}], ["--set", "train.lrate=3"], "train.lrate"),
        ("sft", [{"prompt": "a", "completion": "b"}], ["--set", "train.lr=3e-4"], "moved to train.sft.learning_rate"),
        ("sft", "file.csv", [], "unsupported data file"),
        ("sft", "missing.jsonl", [], "not found"),
        ("sft", [{"prompt": "a", "completion": "b"}], ["--model", "/no/such/model"], "no such model folder"),
    ],
)
def test_train_cli_bad_input(tiny_model, tmp_path, capsys, kind, data, extra, needle):
    if isinstance(data, str):
        path = tmp_path / data
        if data.endswith(".csv"):
            path.write_text("prompt,completion\na,b\n")
    else:
        path = tmp_path / "data.jsonl"
        _write(path, data)
    model = [] if "--model" in extra else ["--model", tiny_model]
    assert main(["train", "--kind", kind, *model, "--data", str(path), "--output", str(tmp_path / "out"), *extra]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_cli_refuses_existing_output(tiny_model, tmp_path, capsys):
    _write(tmp_path / "d.jsonl", SFT_ROWS)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["train", "--kind", "sft", "--model", tiny_model, "--data", str(tmp_path / "d.jsonl"),
                 "--output", str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "out" / "keep.txt").exists()


# ---------------------------------------------------------------------------------------------- in the loop


def _sample_row(pid, prompt, text, reason, idx, finish="stop"):
    v = Verdict(reason == "ok", float(reason == "ok"), reason, verifier="arithmetic", verifier_version="1")
    return {"problem_id": pid, "iteration": 1, "prompt": prompt, "completion": text, "finish_reason": finish,
            "num_tokens": len(text), "index": idx, "hinted": False, "model": "seed", "temperature": 0.7,
            "top_p": 1.0, "seed": 1, "verdict": v.to_dict()}


def test_stage_train_runs_sft_then_dpo(tiny_model, tmp_path):
    """The pairs and train stages on a prepared run dir: SFT, then DPO on this iteration's pairs; then no pairs,
    DPO skipped."""
    from safetensors.torch import load_file

    from starloop.loop.driver import Driver
    from starloop.loop.fileio import read_jsonl, write_jsonl
    from starloop.loop.runtime.context import RunContext
    from starloop.loop.stages import pairs, train

    small = [f"train.{k}.{f}" for k in ("sft", "dpo") for f in ("per_device_train_batch_size=4", "max_length=64",
                                                              "gradient_checkpointing=false")]
    cfg = load_config(None, [f"model.path={tiny_model}", "train.dpo.enabled=true", *small, "train.sft.max_steps=4",
                             "train.dpo.learning_rate=0.01", "pairs.per_prompt=2", "runtime.progress=false",
                             "data.train.options={split: train, levels: [2], per_level: 6}",
                             "data.eval.options={split: eval, levels: [2], per_level: 2}"])
    driver = Driver(cfg, tmp_path / "run")
    driver.rd.init(cfg)
    root = driver.rd.root
    with RunContext.open(cfg, driver.rd) as ctx:
        probs = ctx.train_problems[:4]
        prompts = ctx.prompts(probs)
        verified = []
        for p, prompt in zip(probs[:3], prompts, strict=False):
            verified += [_sample_row(p.id, prompt, "#### 4", "ok", 0), _sample_row(p.id, prompt, "#### 5", "wrong", 1),
                         _sample_row(p.id, prompt, "####", "unparseable", 2),
                         _sample_row(p.id, prompt, "#### 4 and more", "truncated", 3, "length")]
        verified.append(_sample_row(probs[3].id, prompts[3], "#### 9", "wrong", 0))
        write_jsonl(root / "iter-001/verify/verified.jsonl", verified)
        write_jsonl(root / "iter-001/select/sft.jsonl",
                    [{"prompt": r["prompt"], "completion": r["completion"], "problem_id": r["problem_id"]}
                     for r in verified if r["verdict"]["correct"]])
        driver.run_stage(ctx, 1, pairs.STAGE)
        driver.run_stage(ctx, 1, train.STAGE)
        model_1 = ctx.model_for(1)

        # Iteration 2: only wrong samples, so no pairs: DPO is skipped and recorded as such.
        write_jsonl(root / "iter-002/verify/verified.jsonl", [r for r in verified if not r["verdict"]["correct"]])
        write_jsonl(root / "iter-002/select/sft.jsonl", [])
        driver.run_stage(ctx, 2, pairs.STAGE)
        driver.run_stage(ctx, 2, train.STAGE)

    info, pstats = driver.rd.stage_info("iter-001/train"), driver.rd.stage_info("iter-001/pairs")
    out = root / "iter-001/train"
    assert info["sft"]["steps"] > 0 and info["sft"]["rows"] == 3  # SFT
    assert pstats["pairs"] == 6 and pstats["prompts_with_pairs"] == 3
    assert pstats["truncated_rejected_dropped"] == 3 and pstats["prompts_without_correct"] == 1
    assert info["dpo"]["rows"] == 6 and info["dpo"]["steps"] > 0  # recorded in the manifest
    assert model_1 == str(out / "model") and (out / "sft_model" / "config.json").exists()
    sft_w, dpo_w = load_file(out / "sft_model/model.safetensors"), load_file(out / "model/model.safetensors")
    assert any(not (sft_w[k] == dpo_w[k]).all() for k in sft_w)  # DPO changed the SFT model
    rows = read_jsonl(root / "iter-001/pairs/pairs.jsonl")
    assert {(r["chosen"], r["rejected_reason"]) for r in rows} == {("#### 4", "wrong"), ("#### 4", "unparseable")}
    assert all(r["verifier"] == probs[0].task and r["chosen_model"] == "seed" and r["iteration"] == 1 for r in rows)

    info = driver.rd.stage_info("iter-002/train")
    assert info["dpo"] == {"skipped": "no pairs"} and driver.rd.stage_info("iter-002/pairs")["pairs"] == 0
    assert info["sft"]["steps"] == 0 and "skipped" in info["sft"]
    assert (root / "iter-002/train/model/config.json").exists()
    assert not (root / "iter-002/train/sft_model").exists()


def test_dpo_alone(tiny_model, tmp_path):
    """train.sft.enabled: false: the train stage runs DPO only, from the starting model, on the pairs stage's pairs."""
    from safetensors.torch import load_file

    from starloop.loop.driver import Driver
    from starloop.loop.fileio import write_jsonl
    from starloop.loop.runtime.context import RunContext
    from starloop.loop.stages import pairs, train

    cfg = load_config(None, [f"model.path={tiny_model}", "train.sft.enabled=false", "train.dpo.enabled=true",
                             "train.dpo.per_device_train_batch_size=2", "train.dpo.max_steps=2",
                             "train.dpo.max_length=64", "train.dpo.gradient_checkpointing=false",
                             "train.dpo.learning_rate=0.01", "runtime.progress=false",
                             "data.train.options={split: train, levels: [2], per_level: 4}",
                             "data.eval.options={split: eval, levels: [2], per_level: 2}"])
    driver = Driver(cfg, tmp_path / "run")
    driver.rd.init(cfg)
    with RunContext.open(cfg, driver.rd) as ctx:
        verified = [_sample_row(p.id, prompt, text, reason, i) for p, prompt in
                    zip(ctx.train_problems, ctx.prompts(ctx.train_problems), strict=True)
                    for i, (text, reason) in enumerate([("#### 4", "ok"), ("#### 5", "wrong")])]
        write_jsonl(driver.rd.root / "iter-001/verify/verified.jsonl", verified)
        driver.run_stage(ctx, 1, pairs.STAGE)
        driver.run_stage(ctx, 1, train.STAGE)
    info = driver.rd.stage_info("iter-001/train")
    assert "sft" not in info and info["dpo"]["steps"] == 2 and info["dpo"]["rows"] == 4
    out = driver.rd.root / "iter-001/train"
    assert not (out / "sft_model").exists()
    base, trained = load_file(f"{tiny_model}/model.safetensors"), load_file(out / "model/model.safetensors")
    assert any(not (base[k] == trained[k]).all() for k in base)


@register_verifier("parity-test", version="0")
def _parity(completion, problem, *, finish_reason=None, config=None):
    """Test verifier: correct iff the completion has an even number of characters (about half are)."""
    if finish_reason == "length":
        return Verdict.fail("truncated")
    return Verdict.ok() if len(completion) % 2 == 0 else Verdict.fail("wrong")


def test_loop_iteration_with_dpo(tmp_path, tiny_overrides):
    """A whole iteration with DPO: sample, verify, select, pairs, SFT, DPO, evaluate. The demo's tiny seed model
    rarely solves a problem, so a verifier registered here judges by length parity: pairs surely exist."""
    from starloop.loop.config import DatasetConfig
    from starloop.loop.driver import Driver
    from starloop.loop.fileio import write_jsonl
    from starloop.loop.tasks import load_problems

    for split, n in (("train", 12), ("eval", 4)):
        probs = load_problems(DatasetConfig(source="arithmetic", options={"split": split, "levels": [2], "per_level": n}))
        write_jsonl(tmp_path / f"{split}.jsonl", ({"id": p.id, "prompt": p.prompt, "answer": p.answer} for p in probs))
    cfg = load_config(None, [
        *tiny_overrides, "sampling.backend=transformers", "sampling.n=4", "rationalize.enabled=false",
        *(f"data.{s}={{source: jsonl, path: {tmp_path / (s + '.jsonl')}, task: parity-test}}" for s in ("train", "eval")),
        "train.dpo.enabled=true", "train.dpo.loss_type=[sigmoid, sft]", "train.dpo.learning_rate=0.0001",
        "train.dpo.per_device_train_batch_size=8", "train.dpo.num_train_epochs=1", "train.dpo.gradient_checkpointing=false",
        "train.keep_sft_model=false",
    ])
    driver = Driver(cfg, tmp_path / "run")
    metrics = driver.run()
    assert [m["iteration"] for m in metrics] == [0, 1]
    info = driver.rd.stage_info("iter-001/train")
    assert info["sft"]["rows"] > 0 and info["sft"]["steps"] > 0  # SFT ran
    assert driver.rd.stage_info("iter-001/pairs")["pairs"] > 0 and info["dpo"]["steps"] > 0  # then DPO
    assert info["dpo"]["loss_type"] == ["sigmoid", "sft"]
    out = driver.rd.root / "iter-001/train"
    assert (out / "model/config.json").exists() and not (out / "sft_model").exists()
    assert driver.rd.stage_info("iter-001/evaluate")["pass@1"] is not None


def test_sft_rows_longer_than_max_length_are_dropped_or_refused(tiny_model, tmp_path):
    long_row = {"prompt": "x" * 200, "completion": "y"}
    cfg = _cfg(sft={"max_length": 64, "max_steps": 1, "per_device_train_batch_size": 2})
    with pytest.raises(ValueError, match=r"train\.sft\.max_length"):
        train_sft(tiny_model, [long_row] * 4, cfg, tmp_path / "a")
    stats = train_sft(tiny_model, [long_row, {"prompt": "Q: 1+1\nA: ", "completion": "2"}] * 2, cfg, tmp_path / "b")
    assert stats["steps"] == 1 and (tmp_path / "b/model/config.json").exists()
