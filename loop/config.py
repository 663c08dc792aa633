"""Typed experiment config: one YAML per experiment, ``--set section.key=value`` overrides.

Every section is a dataclass; loading checks every key and every value's type before any work
starts and names the offending key (``train.lr: expected float, got 'fast'``). Per-verifier
parameters live in ``verify.options.<verifier>`` and are checked by that verifier's own config.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


class ConfigError(ValueError):
    """A config file or override is unusable; the message names the key."""


@dataclass
class DatasetConfig:
    """Where problems come from: a task adapter (``source``) and its arguments."""

    source: str = "arithmetic"
    """Adapter name: arithmetic (built-in demo task), jsonl / parquet / hub / file (generic, with ``fields``),
    gsm8k, math, math500, mbpp, humaneval, or mixed (the union of ``parts``)."""
    path: str | None = None
    """Local file (.jsonl/.json/.parquet/.csv), ``save_to_disk`` directory, data directory, or Hub id."""
    split: str | None = None
    """Split name, with optional Hugging Face slicing: ``train``, ``test[:500]``, ``train[10%:]``."""
    limit: int | None = None
    task: str | None = None
    """Verifier name for every problem; overrides the adapter's default (gsm8k/math: math, mbpp/humaneval: code)."""
    fields: dict[str, str] = field(default_factory=dict)
    """Field mapping for the generic adapter: {id, prompt, answer, tests, task} -> column name."""
    options: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific options (arithmetic: levels, counts; Hub datasets: ``name`` (config, or a list of
    configs to concatenate) and ``revision``; see each adapter in loop/tasks/)."""
    parts: list[DatasetConfig] = field(default_factory=list)
    """For ``source: mixed``: the datasets whose problems are pooled (e.g. math and code problems in one
    loop; each problem's task picks its verifier)."""


@dataclass
class DataConfig:
    train: DatasetConfig = field(default_factory=DatasetConfig)
    eval: DatasetConfig = field(default_factory=lambda: DatasetConfig(options={"split": "eval"}))
    real: DatasetConfig | None = None
    """Optional real (human / gold) SFT data mixed into every iteration's SFT set."""


@dataclass
class ModelConfig:
    path: str = "builtin:arithmetic"
    """A Hugging Face model directory or Hub id; ``builtin:arithmetic`` builds the demo's seed model."""
    dtype: str = "auto"
    trust_remote_code: bool = False
    builtin_options: dict[str, Any] = field(default_factory=dict)
    """Options of a built-in model (``builtin:arithmetic``: the demo's seed model, see loop/demo.py)."""


@dataclass
class PromptConfig:
    system: str | None = None
    chat_template: bool = True
    """Use the tokenizer's chat template (when it has one); otherwise the prompt text is used as is."""
    answer_format: bool = True
    """Append the verifier's answer-format instruction to each prompt."""
    fewshot: list[dict[str, str]] = field(default_factory=list)
    """Exemplars as {prompt, completion} pairs, rendered as earlier chat turns."""


@dataclass
class SamplingConfig:
    backend: Literal["vllm", "transformers"] = "vllm"
    problems_per_iteration: int | None = None
    """Sample this many problems of the train pool per iteration (fresh random subset); None = all."""
    n: int = 4
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    batch_size: int = 64
    """Prompts per generate call (transformers backend)."""
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    """Number of sampler replicas, each over a shard of the problems."""
    enforce_eager: bool = True
    max_model_len: int | None = None


@dataclass
class VerifyConfig:
    workers: int = 2
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-verifier options, e.g. {math: {timeout: 5}}; checked against that verifier's config."""


@dataclass
class RationalizeConfig:
    enabled: bool = True
    n: int = 4
    hint_template: str = "{prompt} (Hint: the answer is {answer}.)"
    """How the gold answer is shown; rationales are stored under the original hint-free prompt."""
    reject_restated_hint: bool = True
    """Reject a rationale whose reasoning is little more than the hinted answer."""


@dataclass
class SelectConfig:
    max_per_problem: int = 4
    dedup: Literal["none", "exact", "near"] = "exact"
    """exact: whitespace-normalized text; near: exact, then word 3-gram Jaccard >= near_dup_threshold."""
    near_dup_threshold: float = 0.9
    """Jaccard similarity of word 3-gram sets (exact, per problem) at or above which two traces are near duplicates."""
    include_unverified: bool = False
    """Ablation only: select samples without looking at verdicts, i.e. no filtering at all (wrong,
    unparseable and truncated samples are selected too); cap and dedup still apply."""
    real_fraction: float = 0.0
    """Fraction of the SFT set drawn from data.real (gold data) each iteration."""
    replay_fraction: float = 0.0
    """Fraction of the SFT set drawn from earlier iterations' SFT sets."""
    selfgen: bool = True
    """Use self-generated traces at all (False = the matched seed-data-only control)."""


@dataclass
class TrainConfig:
    init: Literal["base", "previous"] = "previous"
    """Start each iteration from the base model (as STaR does) or from the previous checkpoint."""
    epochs: float = 1.0
    max_steps: int = -1
    lr: float = 1e-4
    lr_scheduler: str = "constant_with_warmup"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 512
    packing: bool = False
    gradient_checkpointing: bool = False
    bf16: bool = False
    seed: int = 0
    logging_steps: int = 10
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    dpo: bool = False
    """Run DPO on verified pairs after SFT in each iteration."""
    dpo_beta: float = 0.1
    dpo_loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    """TRL loss types; ["sigmoid", "sft"] is DPO + NLL (Iterative RPO)."""
    dpo_loss_weights: list[float] | None = None
    """One weight per loss type (None = all 1.0)."""
    dpo_lr: float = 5e-6
    dpo_epochs: float = 1.0
    pairs_strategy: Literal["random", "hardest", "length_matched"] = "random"
    """How failed completions are paired with correct ones (see loop/pairs.py): random; hardest (highest
    verifier score, then most similar to the chosen); length_matched (smallest length difference)."""
    pairs_per_prompt: int = 2
    pairs_exclude_truncated: bool = True
    """Never use a truncated completion as the rejected one (a truncated completion is not a wrong one)."""
    keep_sft_model: bool = True
    """With dpo: keep the SFT checkpoint as train/sft_model (false deletes it once DPO is done)."""
    launcher: Literal["inprocess", "subprocess", "accelerate", "torchrun"] = "inprocess"
    num_processes: int = 1
    num_machines: int = 1
    accelerate_config: str | None = None
    deepspeed: str | None = None
    report_to: list[str] = field(default_factory=list)


@dataclass
class EvalConfig:
    n: int = 8
    """Samples per problem for pass@k / maj@k."""
    k: list[int] = field(default_factory=lambda: [1, 4, 8])
    temperature: float = 0.8
    greedy: bool = True
    """Also decode greedily for pass@1."""
    max_tokens: int | None = None
    """Defaults to sampling.max_tokens."""


@dataclass
class RuntimeConfig:
    stage_processes: Literal["auto", "yes", "no"] = "auto"
    """Run heavy stages (sample, train, evaluate) in child processes so accelerator memory is released
    between phases; auto = yes when a GPU is present."""
    progress: bool = True


@dataclass
class RunConfig:
    name: str = "demo"
    seed: int = 0
    iterations: int = 3
    runs_dir: str = "runs"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    rationalize: RationalizeConfig = field(default_factory=RationalizeConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Building dataclasses from plain data, with type checks that name the key.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section {tp.__name__}), got {value!r}")
        return build(tp, value, prefix=key + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") if args else v for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; "
            f"known keys{' in ' + prefix.rstrip('.') if prefix else ''}: {sorted(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Read ``path`` (default: the embedded demo config), apply overrides, validate, return RunConfig."""
    path = Path(path) if path is not None else DEMO_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for assignment in overrides:
        _apply_override(data, assignment)
    cfg = build(RunConfig, data)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Cross-field checks and per-verifier option checks, before any work starts."""
    if cfg.iterations < 0:
        raise ConfigError(f"iterations: must be >= 0, got {cfg.iterations}")
    if cfg.sampling.n < 1:
        raise ConfigError(f"sampling.n: must be >= 1, got {cfg.sampling.n}")
    if any(k < 1 or k > cfg.eval.n for k in cfg.eval.k):
        raise ConfigError(f"eval.k: every k must be in 1..eval.n={cfg.eval.n}, got {cfg.eval.k}")
    for frac in ("real_fraction", "replay_fraction"):
        v = getattr(cfg.select, frac)
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"select.{frac}: must be in [0, 1), got {v}")
    if cfg.select.real_fraction > 0 and cfg.data.real is None:
        raise ConfigError("select.real_fraction > 0 needs data.real (a dataset of gold SFT rows)")
    t = cfg.train
    if t.pairs_per_prompt < 1:
        raise ConfigError(f"train.pairs_per_prompt: must be >= 1, got {t.pairs_per_prompt}")
    if not t.dpo_loss_type:
        raise ConfigError("train.dpo_loss_type: needs at least one loss type, e.g. [sigmoid]")
    if t.dpo_loss_weights is not None and len(t.dpo_loss_weights) != len(t.dpo_loss_type):
        raise ConfigError(
            f"train.dpo_loss_weights: {len(t.dpo_loss_weights)} weights for {len(t.dpo_loss_type)} loss types "
            f"{t.dpo_loss_type}"
        )
    if t.dpo_beta <= 0:
        raise ConfigError(f"train.dpo_beta: must be > 0, got {t.dpo_beta}")
    if t.num_processes < 1 or t.num_machines < 1:
        raise ConfigError("train.num_processes and train.num_machines must be >= 1")
    from starloop.verifiers.registry import get_verifier

    for name, opts in cfg.verify.options.items():
        try:
            get_verifier(name).make_config(opts)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"verify.options.{name}: {exc}") from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def diff_configs(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, as 'key: old -> new' lines."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff_configs(a, b, prefix + k + "."))
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
