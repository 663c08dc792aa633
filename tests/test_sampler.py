import pytest

from starloop.loop.config import SamplingConfig
from starloop.loop.records import GenParams
from starloop.loop.runtime.samplers import TransformersSampler, VLLMSampler

from .conftest import require_vllm

PROMPTS = ["Q: 12+3\nA: ", "Q: 7-2+1\nA: ", "Q: 1\nA: "]


def _check(sampler):
    out = sampler.generate(PROMPTS, GenParams(n=3, temperature=1.0, max_tokens=6))
    assert len(out) == len(PROMPTS) and all(len(g) == 3 for g in out)
    for gens in out:
        for g in gens:
            assert g.finish_reason in ("stop", "length")
            assert 0 < g.num_tokens <= 6
            if g.finish_reason == "length":
                assert g.num_tokens == 6
    # A random model essentially never emits EOS within 6 tokens: truncation is reported.
    assert sum(g.finish_reason == "length" for gens in out for g in gens) >= 5
    greedy = sampler.generate(PROMPTS, GenParams(n=1, temperature=0.0, max_tokens=8))
    again = sampler.generate(PROMPTS, GenParams(n=1, temperature=0.0, max_tokens=8))
    assert [g[0].text for g in greedy] == [g[0].text for g in again]
    # Stop strings end the text (excluded, as vLLM does) and count as a stop.
    text = greedy[0][0].text
    if len(text) >= 3:
        stop = text[2]
        cut = sampler.generate(PROMPTS[:1], GenParams(n=1, temperature=0.0, max_tokens=8, stop=(stop,)))[0][0]
        assert cut.text == text[: text.index(stop)] and cut.finish_reason == "stop"


def test_transformers_backend(tiny_model):
    s = TransformersSampler(tiny_model, SamplingConfig(batch_size=2), seed=0)
    try:
        _check(s)
    finally:
        s.close()


@require_vllm
def test_vllm_backend(tiny_model):
    s = VLLMSampler(tiny_model, SamplingConfig(), seed=0)
    try:
        _check(s)
    finally:
        s.close()


def test_unknown_backend_is_config_error():
    from starloop.loop.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="sampling.backend"):
        load_config(None, ["sampling.backend=hf"])
