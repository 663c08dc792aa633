"""Sampling from an OpenAI-compatible server (``sampling.backend: openai``): ``vllm serve``, SGLang, TGI or a
hosted API, through the maintained ``openai`` client.

- One request per prompt, ``n`` completions each, to the completions endpoint (the prompt text starloop
  rendered) or the chat endpoint (``sampling.server.endpoint: chat``: the prompt's chat turns, for the
  server to apply its own model's template); ``temperature``, ``top_p``, ``max_tokens``, ``stop`` and,
  where the server honours one (``sampling.server.request_seed``), a seed per request derived from the
  call's seed and the prompt. ``finish_reason`` is kept (``length`` or ``stop``) and so are token counts
  (per completion from vLLM, which returns each completion's token ids; from other servers only for
  ``n = 1``, the request's own count).
- At most ``sampling.server.concurrency`` requests in flight; each one times out after
  ``sampling.server.timeout`` seconds and is retried ``sampling.server.max_retries`` times with
  exponential backoff after a transient error (the client's own retries).
- Checked before any work: a server that does not answer, refuses the key or does not list the model is
  a one-line :class:`ConfigError` naming the URL and what it serves.
- Kept as they finish (:func:`sample_served`): every finished request is a part of the call's parts folder
  (in a run, ``<run dir>/shards/<digest>/request-NNNNNN.jsonl``), so after a failure mid-stage
  (:class:`ServerFailed`) a rerun sends only the requests still missing.

A server serves a fixed model. That is a teacher, a checkpoint under evaluation, or a student trained
with LoRA: a checkpoint folder holding a LoRA adapter (``adapter/``, as the trainers save one) that the
server does not list is loaded into it by name (vLLM's runtime LoRA loading:
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, ``--enable-lora``, ``--max-lora-rank`` at least the adapter's
rank; the adapter's folder must be readable by the server). :func:`check_run` refuses a run whose student
would need a full-weight checkpoint served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from starloop.loop.config import ConfigError, RunConfig, SamplingConfig
from starloop.loop.records import Generation, GenParams, Sample, SampleRequest, samples_from_generations
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.prompts import prompt_messages
from starloop.loop.runtime.rundir import Parts
from starloop.loop.runtime.samplers import BACKENDS, Progress, Sampler, problem_seed

log = logging.getLogger(__name__)

LORA_HELP = ("start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True in its environment and --enable-lora "
             "--max-lora-rank R (R >= train.lora.r)")


class ServerFailed(RuntimeError):
    """Requests still failed after their retries; the finished ones are kept (a rerun sends only the rest)."""


def make_client(cfg: SamplingConfig, *, retries: int | None = None):
    """An ``openai.OpenAI`` client for ``cfg.base_url``, its key from ``$cfg.api_key_env`` (none: a placeholder,
    which a server without keys accepts)."""
    import openai  # heavy: deferred until a server is used

    return openai.OpenAI(base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
                         timeout=cfg.server.timeout,
                         max_retries=cfg.server.max_retries if retries is None else retries)


def served_models(client: Any, cfg: SamplingConfig) -> list[Any]:
    """What the server at ``cfg.base_url`` serves (``GET /models``); a one-line ConfigError when it cannot say."""
    import openai  # heavy: deferred

    url = cfg.base_url
    try:
        return list(client.models.list())
    except openai.AuthenticationError:
        key = "set" if os.environ.get(cfg.api_key_env) else "unset"
        raise ConfigError(f"the server at {url} refused the API key from ${cfg.api_key_env} ({key})") from None
    except openai.APIConnectionError as exc:
        raise ConfigError(f"no OpenAI-compatible server answers at {url} ({exc.__cause__ or exc})") from None
    except openai.APIStatusError as exc:
        raise ConfigError(f"{url}/models answered {exc.status_code}; is {url} an OpenAI-compatible server's "
                          f"/v1 URL?") from None


def require_model(models: list[Any], name: str, cfg: SamplingConfig) -> None:
    ids = [m.id for m in models]
    if name not in ids:
        raise ConfigError(f"the server at {cfg.base_url} serves {ids}, not {name!r} (start it on that model, or "
                          f"name the model it serves)")


def adapter_dir(model: str) -> Path | None:
    """The LoRA adapter folder of ``model``: the folder itself or its ``adapter/`` (None: no adapter)."""
    p = Path(model)
    return next((d for d in (p, p / "adapter") if (d / "adapter_config.json").is_file()), None)


def _adapter_name(adapter: Path) -> str:
    """A name for an adapter on a server, from its files' content (a retrained adapter gets a new name)."""
    h = hashlib.sha256()
    for f in sorted(adapter.glob("adapter_*")):
        h.update(f.name.encode() + f.read_bytes())
    return f"starloop-{h.hexdigest()[:12]}"


class ServedSampler(Sampler):
    """Samples ``model_path`` on the server at ``cfg.base_url``: a model the server lists by that name, or a
    LoRA adapter folder (a checkpoint's ``adapter/``) loaded into the server under a name of its own."""

    def __init__(self, model_path: str, cfg: SamplingConfig, seed: int = 0, load: LoadOptions | None = None):
        self.model_path, self.seed, self.cfg = str(model_path), seed, cfg
        self.client = make_client(cfg)
        models = served_models(self.client.with_options(max_retries=0), cfg)  # a server that is down: say so at once
        self.vllm = bool(models) and all(getattr(m, "owned_by", None) == "vllm" for m in models)
        self.loaded: str | None = None
        adapter = adapter_dir(self.model_path)
        if self.model_path in {m.id for m in models} or adapter is None:
            require_model(models, self.model_path, cfg)
            self.name = self.model_path
        else:
            self.name = self._load_adapter(adapter, models)

    def _load_adapter(self, adapter: Path, models: list[Any]) -> str:
        import openai  # heavy: deferred

        base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
        roots = {str(getattr(m, "root", None) or m.id) for m in models}
        if base and base not in roots and str(Path(base).resolve()) not in {str(Path(r).resolve()) for r in roots}:
            raise ConfigError(f"LoRA adapter {adapter} was trained on {base}, but the server at {self.cfg.base_url} "
                              f"serves {sorted(roots)}")
        name = _adapter_name(adapter)
        if name in {m.id for m in models}:
            return name
        try:
            self.client.with_options(max_retries=0).post(
                "/load_lora_adapter", body={"lora_name": name, "lora_path": str(adapter.resolve())}, cast_to=str)
        except openai.APIStatusError as exc:
            if "already" in str(exc.body or exc.message):
                return name
            if exc.status_code == 404 and isinstance(exc.body, dict) and "detail" in exc.body:
                raise ConfigError(f"the server at {self.cfg.base_url} cannot load LoRA adapters at runtime "
                                  f"(POST /load_lora_adapter: 404): {LORA_HELP}") from None
            raise ConfigError(f"the server at {self.cfg.base_url} could not load LoRA adapter {adapter}: "
                              f"{_message(exc)} ({LORA_HELP})") from None
        log.info("loaded LoRA adapter %s into %s as %s", adapter, self.cfg.base_url, name)
        self.loaded = name
        return name

    def generate(self, prompts: Sequence[str], params: GenParams, *,
                 progress: Progress = False) -> list[list[Generation]]:
        out: dict[int, list[Generation]] = {}
        self.run(prompts, params, range(len(prompts)), out.__setitem__, progress)
        return [out[i] for i in range(len(prompts))]

    def run(self, prompts: Sequence[str], params: GenParams, todo: Sequence[int],
            done: Callable[[int, list[Generation]], Any], progress: Progress = False) -> None:
        """Send the requests of prompts ``todo`` (``concurrency`` at a time), calling ``done(i, generations)`` as
        each finishes; after a request failed for good, send no more and raise :class:`ServerFailed` once the
        requests in flight are done (and passed to ``done``)."""
        import openai  # heavy: deferred

        bar = (progress if callable(progress) else tqdm)(total=len(todo), desc="sample (server)", unit="prompt",
                                                         disable=not progress)
        pool = ThreadPoolExecutor(self.cfg.server.concurrency, thread_name_prefix="starloop-request")
        futures: dict[Future, int] = {pool.submit(self.request, prompts[i], params): i for i in todo}
        failed: list[tuple[int, BaseException]] = []
        try:
            for fut in as_completed(futures):
                try:
                    gens = fut.result()
                except CancelledError:
                    continue
                except (openai.OpenAIError, ValueError) as exc:
                    if not failed:
                        for other in futures:
                            other.cancel()
                    failed.append((futures[fut], exc))
                    continue
                done(futures[fut], gens)
                bar.update(1)
        except BaseException:  # an interruption: drop what is queued, cut what is in flight
            for other in futures:
                other.cancel()
            self.client.close()
            raise
        finally:
            pool.shutdown(wait=not failed, cancel_futures=True)
            bar.close()
        if failed:
            i, exc = failed[0]
            sent = sum(f.done() and not f.cancelled() and f.exception() is None for f in futures)
            raise ServerFailed(f"request for prompt {i} to {self.cfg.base_url} ({self.name}) failed after "
                               f"{self.cfg.server.max_retries} retries: {_message(exc)}; {sent} of {len(todo)} "
                               f"requests finished")

    def request(self, prompt: str, params: GenParams) -> list[Generation]:
        """One request: ``params.n`` completions of ``prompt``."""
        args: dict[str, Any] = {"model": self.name, "n": params.n, "temperature": params.temperature,
                                "top_p": params.top_p if params.temperature > 0 else 1.0, "stop": list(params.stop) or None}
        if self.cfg.server.request_seed and params.seed is not None:
            args["seed"] = problem_seed(params.seed, str(prompt)) % (1 << 31)
        if self.vllm:
            args["extra_body"] = {"return_token_ids": True}
        if self.cfg.server.endpoint == "chat":
            resp = self.client.chat.completions.create(messages=prompt_messages(prompt),
                                                       max_completion_tokens=params.max_tokens, **args)
            texts = [(c, c.message.content or "") for c in resp.choices]
        else:
            resp = self.client.completions.create(prompt=str(prompt), max_tokens=params.max_tokens, **args)
            texts = [(c, c.text) for c in resp.choices]
        if len(texts) != params.n:
            raise ValueError(f"asked for n={params.n} completions, the server returned {len(texts)}")
        usage = getattr(resp, "usage", None)
        gens = []
        for choice, text in sorted(texts, key=lambda ct: ct[0].index):
            ids = getattr(choice, "token_ids", None)
            count = len(ids) if ids is not None else (usage.completion_tokens if usage and params.n == 1 else None)
            gens.append(Generation(text, "length" if choice.finish_reason == "length" else "stop", count))
        return gens

    def close(self) -> None:
        if self.loaded is not None:
            try:
                self.client.with_options(max_retries=0).post("/unload_lora_adapter", body={"lora_name": self.loaded},
                                                             cast_to=str)
            except Exception as exc:  # the server may be gone; a loaded adapter costs it only memory
                log.debug("unloading %s: %s", self.loaded, exc)
        self.client.close()


BACKENDS["openai"] = ServedSampler


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else inner
        if msg:
            return f"{getattr(exc, 'status_code', '')} {msg}".strip()
    return str(exc.__cause__ or exc).splitlines()[0] if str(exc.__cause__ or exc) else type(exc).__name__


def call_key(sampler: ServedSampler, request: SampleRequest) -> dict[str, Any]:
    """Everything a served call's completions depend on (its parts folder is named by a digest of it); not the
    URL or key: the same model behind another URL continues the same call."""
    s = sampler.cfg.server
    chat = s.endpoint == "chat"
    return {"served": sampler.name, "endpoint": s.endpoint, "request_seed": s.request_seed,
            "problems": [p.id for p in request.problems],
            "prompts": [prompt_messages(p) if chat else str(p) for p in request.prompts],
            "params": [request.params.n, request.params.temperature, request.params.top_p, request.params.max_tokens,
                       list(request.params.stop), request.params.seed]}


def sample_served(sampler: ServedSampler, request: SampleRequest, parts: Parts, progress: Progress = False) -> list[Sample]:
    """Sample ``request`` on the server, keeping each finished request as a part: a rerun after a failure
    sends only the requests whose parts are missing."""
    names = [f"request-{i:06d}" for i in range(len(request.prompts))]
    todo = [i for i, name in enumerate(names) if not parts.done(name)]
    if len(todo) < len(names):
        log.info("%d of %d requests already done (%s); sending the other %d", len(names) - len(todo), len(names),
                 parts.dir, len(todo))

    def keep(i: int, gens: list[Generation]) -> None:
        parts.write(names[i], ({"text": g.text, "finish_reason": g.finish_reason, "num_tokens": g.num_tokens}
                               for g in gens))

    sampler.run(request.prompts, request.params, todo, keep, progress)
    return samples_from_generations(request, [[Generation(**r) for r in parts.read(n)] for n in names])


def check_run(cfg: RunConfig, base: str, teacher: tuple[str, SamplingConfig] | None) -> None:
    """Before any work: every server the run samples through answers and serves what the run asks of it.

    A served student (``sampling.backend: openai``) is sampled at its starting model (``sampling.served_model``)
    and, when the run trains, as LoRA adapters loaded into the same server: a full-weight student's
    checkpoints change every iteration, which no running server can follow."""
    s = cfg.sampling
    if s.backend == "openai":
        if cfg.iterations > 0 and not cfg.train.lora.enabled:
            raise ConfigError("sampling.backend: openai serves a fixed model, and a full-weight student changes every "
                              "iteration; enable train.lora (each iteration's adapter is loaded into the server by "
                              "name), or keep the student on vllm / transformers and serve a teacher "
                              "(sampling.teacher), or evaluate a fixed model (iterations: 0, starloop eval)")
        client = make_client(s, retries=0)
        require_model(served_models(client, s), s.served_model or base, s)
        if cfg.iterations > 0:
            _check_lora_loading(client, s)
    if teacher is not None and teacher[1].backend == "openai":
        tcfg = teacher[1]
        require_model(served_models(make_client(tcfg, retries=0), tcfg), teacher[0], tcfg)


def _check_lora_loading(client: Any, cfg: SamplingConfig) -> None:
    """The server has vLLM's runtime LoRA routes (unloading an adapter it does not have answers with its own
    error; without the routes, the web framework's 404)."""
    import openai  # heavy: deferred

    try:
        client.post("/unload_lora_adapter", body={"lora_name": "starloop-probe-none"}, cast_to=str)
    except openai.APIStatusError as exc:
        if exc.status_code == 404 and isinstance(exc.body, dict) and set(exc.body) == {"detail"}:
            raise ConfigError(f"the server at {cfg.base_url} cannot load LoRA adapters at runtime, which a served "
                              f"student needs: {LORA_HELP}") from None
