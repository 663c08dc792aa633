"""``model.dtype`` and ``model.trust_remote_code`` reach every loader: both samplers, the tokenizer and
the trainers. A model whose config names its own Python classes (``auto_map``) loads only with
``trust_remote_code``; ``dtype`` sets the weights' dtype."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from starloop.loop.config import ConfigError, SamplingConfig, TrainConfig, load_config
from starloop.loop.records import GenParams, SampleRequest
from starloop.loop.runtime.models import LoadOptions, load_tokenizer
from starloop.loop.runtime.samplers import TransformersSampler, VLLMSampler, same_but_weights
from starloop.loop.runtime.sampling import Sampling
from starloop.loop.runtime.trainers import train_sft
from starloop.verifiers.records import Problem

from .conftest import require_vllm

CONFIGURATION = """
from transformers import LlamaConfig


class TinyCustomConfig(LlamaConfig):
    model_type = "starloop_tiny_custom"
"""

MODELING = """
from transformers import LlamaForCausalLM

from .configuration_custom import TinyCustomConfig


class TinyCustomForCausalLM(LlamaForCausalLM):
    config_class = TinyCustomConfig
"""

GREEDY = GenParams(n=1, temperature=0.0, max_tokens=4)


@pytest.fixture(scope="module")
def custom_model(tiny_model, tmp_path_factory) -> str:
    """The tiny model, re-declared as a model type transformers does not know, with its code beside it."""
    path = tmp_path_factory.mktemp("custom") / "model"
    shutil.copytree(tiny_model, path)
    (path / "configuration_custom.py").write_text(textwrap.dedent(CONFIGURATION))
    (path / "modeling_custom.py").write_text(textwrap.dedent(MODELING))
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(model_type="starloop_tiny_custom", architectures=["TinyCustomForCausalLM"],
               auto_map={"AutoConfig": "configuration_custom.TinyCustomConfig",
                         "AutoModelForCausalLM": "modeling_custom.TinyCustomForCausalLM"})
    (path / "config.json").write_text(json.dumps(cfg))
    return str(path)


def test_config_takes_known_dtypes_only():
    assert load_config(None, ["model.dtype=bfloat16"]).model.dtype == "bfloat16"
    with pytest.raises(ConfigError, match="model.dtype"):
        load_config(None, ["model.dtype=float64"])


def test_transformers_sampler_loads_remote_code_only_when_trusted(custom_model):
    cfg = SamplingConfig(backend="transformers")
    with pytest.raises(ValueError, match="trust_remote_code"):
        TransformersSampler(custom_model, cfg, 0)
    s = TransformersSampler(custom_model, cfg, 0, LoadOptions(trust_remote_code=True))
    try:
        assert type(s.model).__name__ == "TinyCustomForCausalLM"
        out = s.generate(["1+2="], GREEDY)
        assert len(out) == 1 and out[0][0].finish_reason in ("stop", "length")
    finally:
        s.close()


def test_dtype_reaches_the_transformers_engine(tiny_model):
    cfg = SamplingConfig(backend="transformers")
    with Sampling(cfg, engine_seed=0) as default:
        assert default.engine(tiny_model).model.dtype == torch.float32  # auto on CPU: float32
    with Sampling(cfg, engine_seed=0, load=LoadOptions(dtype="bfloat16")) as bf16:
        engine = bf16.engine(tiny_model)
        assert engine.model.dtype == torch.bfloat16
        assert len(engine.generate(["1+2="], GREEDY)[0]) == 1


def test_tokenizer_and_trainer_honour_the_options(custom_model, tmp_path):
    assert load_tokenizer(custom_model, LoadOptions(trust_remote_code=True)) is not None
    tcfg = TrainConfig()
    tcfg.sft.args.update(max_steps=1, per_device_train_batch_size=2, max_length=32)
    rows = [{"prompt": "1+2=", "completion": "3"}, {"prompt": "2+2=", "completion": "4"}]
    with pytest.raises(ValueError, match="trust_remote_code"):
        train_sft(custom_model, rows, tcfg, tmp_path / "refused")
    stats = train_sft(custom_model, rows, tcfg, tmp_path / "trusted",
                      load=LoadOptions(dtype="bfloat16", trust_remote_code=True))
    assert stats["steps"] == 1
    saved = json.loads((Path(tmp_path / "trusted" / "model" / "config.json")).read_text())
    assert saved["architectures"] == ["TinyCustomForCausalLM"]
    assert saved.get("dtype", saved.get("torch_dtype")) == "bfloat16"


@require_vllm
def test_dtype_and_engine_options_reach_the_vllm_engine(tiny_model):
    s = VLLMSampler(tiny_model, SamplingConfig(max_model_len=64, max_num_seqs=37), seed=0,
                    load=LoadOptions(dtype="bfloat16"))
    try:
        assert s.llm.llm_engine.model_config.dtype == torch.bfloat16  # auto would be float32 for this checkpoint
        assert s.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs == 37
        assert len(s.generate(["1+2="], GREEDY)[0]) == 1
    finally:
        s.close()


def _other_weights(model: str, folder: Path) -> str:
    """A checkpoint of the same model (config, tokenizer) with other weights."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, folder)
    weights = load_file(folder / "model.safetensors")
    g = torch.Generator().manual_seed(1)
    save_file({k: v + 0.5 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in weights.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    return str(folder)


def test_only_checkpoints_of_one_model_share_an_engine(tiny_model, tmp_path):
    other = _other_weights(tiny_model, tmp_path / "other")
    assert same_but_weights(tiny_model, other)
    cfg = json.loads((tmp_path / "other" / "config.json").read_text())
    (tmp_path / "other" / "config.json").write_text(json.dumps({**cfg, "rope_theta": 500.0}))
    assert not same_but_weights(tiny_model, other)
    assert not same_but_weights(tiny_model, tmp_path / "nowhere")


@require_vllm
def test_a_parked_vllm_engine_loads_the_next_checkpoint_and_draws_what_a_new_engine_draws(tiny_model, tmp_path,
                                                                                           caplog, capfd):
    """On a CPU machine the train stage parks the engine; the next checkpoint of the same model is loaded into it
    instead of a new engine being started, and it draws exactly what a new engine of that checkpoint draws."""
    other = _other_weights(tiny_model, tmp_path / "other")
    cfg = SamplingConfig(max_model_len=64)
    problems = [Problem(id=f"p{i}", task="math", prompt=f"{i}+{i}", answer=str(2 * i)) for i in range(6)]

    def texts(model: str, sampling: Sampling) -> list[str]:
        params = GenParams(n=3, temperature=1.0, max_tokens=8)
        request = SampleRequest(model, problems, [f"Q: {p.prompt}\nA: " for p in problems], params, iteration=1)
        return [s.completion for s in sampling.sample(request)]

    with Sampling(cfg, engine_seed=0) as fresh:
        want = texts(other, fresh)
    with Sampling(cfg, engine_seed=0) as sampling:
        first = texts(tiny_model, sampling)
        engine = sampling.engine(tiny_model)
        sampling.release(park=True)  # what the train stage does
        capfd.readouterr()
        with caplog.at_level(logging.INFO, logger="starloop.loop.runtime.sampling"):
            got = texts(other, sampling)
        assert sampling.engine(other) is engine
    assert f"loading {other} into the running vllm sampler" in caplog.text
    assert got == want and got != first
    # The tied LM head and the rotary cache have no weights of their own in a checkpoint: no warning about them.
    assert "Failed to load weights" not in "".join(capfd.readouterr())


def test_the_reload_keeps_vllms_warnings_about_layers_that_have_weights():
    from starloop.loop.runtime.samplers import RELOAD_LOGGER, _NoOwnWeights

    def record(layer: str) -> logging.LogRecord:
        return logging.LogRecord(RELOAD_LOGGER, logging.WARNING, __file__, 1, "%s: Failed to load weights", (layer,),
                                 None)

    quiet = _NoOwnWeights()
    assert not quiet.filter(record("RotaryEmbedding")) and not quiet.filter(record("ParallelLMHead"))
    assert quiet.filter(record("QKVParallelLinear"))
    other = logging.LogRecord(RELOAD_LOGGER, logging.WARNING, __file__, 1, "%s: something else", ("ParallelLMHead",),
                              None)
    assert quiet.filter(other)
