"""Cross-field checks of a loaded config, before any work starts (:func:`validate`): each names the key
and what it must be."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starloop.loop.config.schema import (
    PairsConfig,
    RunConfig,
    RuntimeConfig,
    SamplingConfig,
    TeacherConfig,
    VerifyConfig,
)
from starloop.loop.config.training import TrainConfig
from starloop.loop.errors import ConfigError
from starloop.verifiers.registry import get_verifier


def _check_pairs(p: PairsConfig) -> None:
    if p.per_prompt < 1:
        raise ConfigError(f"pairs.per_prompt: must be >= 1, got {p.per_prompt}")


def _check_train(t: TrainConfig) -> None:
    if not (t.sft.enabled or t.dpo.enabled):
        raise ConfigError("train: neither train.sft.enabled nor train.dpo.enabled; enable at least one")
    dpo = t.dpo.args
    if "loss_type" in dpo and not dpo["loss_type"]:
        raise ConfigError("train.dpo.loss_type: needs at least one loss type, e.g. [sigmoid]")
    weights, losses = dpo.get("loss_weights"), dpo.get("loss_type", ["sigmoid"])
    if weights is not None and len(weights) != len(losses if isinstance(losses, list) else [losses]):
        raise ConfigError(f"train.dpo.loss_weights: {len(weights)} weights for loss types {losses}")
    if dpo.get("beta", 0.1) <= 0:
        raise ConfigError(f"train.dpo.beta: must be > 0, got {dpo['beta']}")
    if t.launch.num_processes < 1 or t.launch.num_machines < 1:
        raise ConfigError("train.launch.num_processes and train.launch.num_machines must be >= 1")


def _check_verify(v: VerifyConfig) -> None:
    if v.workers < 1:
        raise ConfigError(f"verify.workers: must be >= 1, got {v.workers}")
    for name, opts in v.options.items():
        try:
            get_verifier(name).make_config(opts)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"verify.options.{name}: {exc}") from None


def _check_runtime(r: RuntimeConfig) -> None:
    if r.ray_address is None:
        return
    if r.executor != "ray":
        raise ConfigError(f"runtime.ray_address={r.ray_address} is set but runtime.executor={r.executor}; "
                          f"set runtime.executor=ray to sample on that cluster")
    if r.ray_address != "auto" and not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}", r.ray_address):
        raise ConfigError(f"runtime.ray_address: expected auto or HOST:PORT (the Ray head's address), "
                          f"got {r.ray_address!r}")


SECTION_CHECKS: dict[str, Callable[[Any], None]] = {"pairs": _check_pairs, "train": _check_train, "verify": _check_verify,
                                             "runtime": _check_runtime}


def validate(cfg: RunConfig) -> None:
    """Cross-field checks and per-verifier option checks, before any work starts."""
    if cfg.iterations < 0:
        raise ConfigError(f"iterations: must be >= 0, got {cfg.iterations}")
    if cfg.sampling.n < 1:
        raise ConfigError(f"sampling.n: must be >= 1, got {cfg.sampling.n}")
    if cfg.sampling.max_num_seqs is not None and cfg.sampling.max_num_seqs < 1:
        raise ConfigError(f"sampling.max_num_seqs: must be >= 1 (or null: vLLM's default), got {cfg.sampling.max_num_seqs}")
    _check_adaptive(cfg)
    if any(k < 1 or k > cfg.eval.n for k in cfg.eval.k):
        raise ConfigError(f"eval.k: every k must be in 1..eval.n={cfg.eval.n}, got {cfg.eval.k}")
    for frac in ("real_fraction", "replay_fraction"):
        v = getattr(cfg.select, frac)
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"select.{frac}: must be in [0, 1), got {v}")
    if cfg.select.real_fraction > 0 and cfg.data.real is None:
        raise ConfigError("select.real_fraction > 0 needs data.real (a dataset of gold SFT rows)")
    _check_served(cfg.sampling)
    _check_label(cfg)
    for name, check in SECTION_CHECKS.items():
        check(getattr(cfg, name))


def _check_label(cfg: RunConfig) -> None:
    """Unlabeled data only for training, and only with the label stage that labels it."""
    lab = cfg.label
    if not 0.0 < lab.min_agreement <= 1.0:
        raise ConfigError(f"label.min_agreement: must be in (0, 1], got {lab.min_agreement}")
    if lab.tests_n < 1 or lab.max_tests < 1:
        raise ConfigError(f"label.tests_n and label.max_tests: must be >= 1, got {lab.tests_n}, {lab.max_tests}")
    if "{prompt}" not in lab.tests_prompt:
        raise ConfigError("label.tests_prompt: must contain {prompt} (the problem)")
    for name, ds in (("eval", cfg.data.eval), ("real", cfg.data.real)):
        if ds is not None and (ds.unlabeled or any(p.unlabeled for p in ds.parts)):
            raise ConfigError(f"data.{name}.unlabeled: only train data may be unlabeled ({name} data needs gold answers)")
    train = cfg.data.train
    if (train.unlabeled or any(p.unlabeled for p in train.parts)) and not lab.enabled:
        raise ConfigError("data.train.unlabeled: unlabeled problems need the label stage; set label.enabled: true")
    if not 0.0 <= cfg.curriculum.threshold <= 1.0:
        raise ConfigError(f"curriculum.threshold: must be in [0, 1], got {cfg.curriculum.threshold}")
    syn = cfg.synthesize
    if syn.enabled and not lab.enabled:
        raise ConfigError("synthesize.enabled: new problems come without answers; set label.enabled: true to label them")
    if syn.proposals < 1 or syn.k < 1 or syn.n_solutions < 1:
        raise ConfigError(f"synthesize.proposals, k and n_solutions: must be >= 1, got {syn.proposals}, {syn.k}, "
                          f"{syn.n_solutions}")
    if "{examples}" not in syn.template or "{prompt}" not in syn.example:
        raise ConfigError("synthesize.template must contain {examples}, and synthesize.example {prompt}")
    if syn.judge:
        try:
            get_verifier("judge").make_config(syn.judge)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"synthesize.judge: {exc}") from None
    if lab.rewrite != "none" and not lab.enabled:
        raise ConfigError("label.rewrite: the statements vote in the label stage; set label.enabled: true")
    if lab.rewrite != "none" and (lab.forms < 1 or cfg.sampling.n % lab.forms):
        raise ConfigError(f"label.forms: must be >= 1 and divide sampling.n (each statement gets as many samples), "
                          f"got {lab.forms} for n={cfg.sampling.n}")
    if lab.enabled and cfg.sampling.adaptive.enabled:
        raise ConfigError("label.enabled: adaptive sampling verifies samples as they come, before any vote; "
                          "turn one of them off (sampling.adaptive.enabled: false)")


def _check_adaptive(cfg: RunConfig) -> None:
    a = cfg.sampling.adaptive
    if a.round_n < 1:
        raise ConfigError(f"sampling.adaptive.round_n: must be >= 1, got {a.round_n}")
    if a.max_per_problem is not None and a.max_per_problem < a.round_n:
        raise ConfigError(f"sampling.adaptive.max_per_problem: must be >= round_n={a.round_n}, got {a.max_per_problem}")
    if a.budget <= 0:
        raise ConfigError(f"sampling.adaptive.budget: must be > 0, got {a.budget}")


def _check_served(s: SamplingConfig) -> None:
    """A server needs a URL and sane request settings; a teacher needs a model (what a served student may
    be is the run's business: see ``runtime.served.check_run``)."""
    srv, t = s.server, s.teacher
    if srv.concurrency < 1 or srv.timeout <= 0 or srv.max_retries < 0:
        raise ConfigError(f"sampling.server: needs concurrency >= 1, timeout > 0 and max_retries >= 0, got "
                          f"{srv.concurrency}, {srv.timeout}, {srv.max_retries}")
    if s.backend == "openai" and not s.base_url:
        raise ConfigError("sampling.base_url: required with sampling.backend: openai (e.g. http://127.0.0.1:8000/v1)")
    if s.backend == "openai" and s.data_parallel_size > 1:
        raise ConfigError("sampling.data_parallel_size: the openai backend sends every request to one server; set "
                          "sampling.server.concurrency instead")
    if t.model is None:
        if t != TeacherConfig():
            raise ConfigError("sampling.teacher: other keys are set but not sampling.teacher.model (no teacher without it)")
        return
    if t.iterations is not None and t.iterations < 1:
        raise ConfigError(f"sampling.teacher.iterations: must be >= 1 (or null: every iteration), got {t.iterations}")
    if (t.backend or s.backend) == "openai" and not (t.base_url or s.base_url):
        raise ConfigError("sampling.teacher.base_url: required for a served teacher (backend: openai)")
