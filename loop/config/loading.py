"""Reading a config: YAML (with ``extends``), ``--set`` overrides, type checks that name the key.

Loading checks every key and every value's type before any work starts and names the offending
key (``sampling.n: expected int, got 2.5``), with a did-you-mean for near misses and the new
place of keys that moved (``train.dpo_beta`` -> ``train.dpo.beta``). Numbers such as ``3e-4``
are floats, in files and in ``--set`` (YAML 1.1 would read them as strings).

A config may start from another: ``extends: demo.yaml`` (relative to the file, else a shipped
config), then only the keys that differ; mappings merge key by key, anything else replaces.
Shipped configs (``configs/`` of the source tree, package data ``starloop.configs`` when
installed) are found by name wherever starloop runs: ``configs/demo.yaml``,
``configs/deepspeed/zero2.json``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib.resources
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from starloop.loop.config.checks import SECTION_CHECKS, validate
from starloop.loop.config.schema import RunConfig, to_plain
from starloop.loop.config.training import OpenSection
from starloop.loop.errors import ConfigError

DEMO = "demo.yaml"

# Flat train keys of earlier versions -> where they live now.
MOVED = {
    "train.lr": "train.sft.learning_rate", "train.epochs": "train.sft.num_train_epochs",
    "train.max_steps": "train.sft.max_steps", "train.lr_scheduler": "train.sft.lr_scheduler_type",
    "train.warmup_ratio": "train.sft.warmup_steps (a value below 1 is a ratio of the steps)",
    "train.weight_decay": "train.sft.weight_decay", "train.batch_size": "train.sft.per_device_train_batch_size",
    "train.grad_accum": "train.sft.gradient_accumulation_steps", "train.max_length": "train.sft.max_length",
    "train.packing": "train.sft.packing", "train.gradient_checkpointing": "train.sft.gradient_checkpointing",
    "train.bf16": "train.sft.bf16", "train.seed": "train.sft.seed (and data_seed)",
    "train.logging_steps": "train.sft.logging_steps", "train.lora_r": "train.lora.r",
    "train.lora_alpha": "train.lora.lora_alpha", "train.lora_dropout": "train.lora.lora_dropout",
    "train.lora_target_modules": "train.lora.target_modules", "train.dpo_beta": "train.dpo.beta",
    "train.dpo_loss_type": "train.dpo.loss_type", "train.dpo_loss_weights": "train.dpo.loss_weights",
    "train.dpo_lr": "train.dpo.learning_rate", "train.dpo_epochs": "train.dpo.num_train_epochs",
    "train.pairs_strategy": "pairs.strategy", "train.pairs_per_prompt": "pairs.per_prompt",
    "train.pairs_exclude_truncated": "pairs.exclude_truncated", "train.launcher": "train.launch.launcher",
    "train.num_processes": "train.launch.num_processes", "train.num_machines": "train.launch.num_machines",
    "train.accelerate_config": "train.launch.accelerate_config", "train.deepspeed": "train.launch.deepspeed",
    "train.report_to": "runtime.report_to",
}


# ---------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, except that ``3e-4`` and ``1E5`` are floats (as in YAML 1.2)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def shipped(name: str) -> Path | None:
    """The shipped config file ``name`` (``demo.yaml``, ``deepspeed/zero2.json``), or None."""
    rel = name.removeprefix("./").removeprefix("configs/")
    ref = importlib.resources.files("starloop.configs").joinpath(rel)
    return Path(str(ref)) if ref.is_file() else None


def config_file(path: str | Path, *, key: str = "config file") -> Path:
    """``path`` when it exists, else the shipped config it names (``configs/deepspeed/zero3.json``)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    found = None if p.is_absolute() else shipped(p.as_posix())
    if found is None:
        raise ConfigError(f"{key}: file not found: {path}")
    return found


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"config files extend each other in a cycle: {' -> '.join(map(str, (*seen, path)))}")
    try:
        data = parse_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends: expected a file name, got {base!r}")
    near = path.parent / base
    return merge(_read(near.resolve() if near.is_file() else config_file(base, key=f"{path}: extends"),
                       (*seen, path)), data)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------------------------- types


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or isinstance(tp, typing.TypeVar | str):
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, OpenSection):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: a section now; set {key}.enabled: {str(value).lower()}")
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section {tp.__name__}), got {value!r}")
        return open_section(tp, value, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section {tp.__name__}), got {value!r}")
        return build(tp, value, prefix=key + ".")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
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
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if value in {m.value for m in tp} or value in tp.__members__:
            return value
        raise ConfigError(f"{key}: expected one of {[m.value for m in tp]}, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return value  # a library type we do not model: the library checks it when it builds its config


def _unknown(cls: type, keys: list[str], names: list[str], prefix: str) -> ConfigError:
    key = keys[0]
    dotted = prefix + key
    if dotted in MOVED:
        return ConfigError(f"{dotted}: this key moved to {MOVED[dotted]}")
    where = f" in {prefix.rstrip('.')}" if prefix else ""
    return ConfigError(f"unknown config key(s) {[prefix + k for k in keys]}{did_you_mean(key, names)}; "
                       f"known keys{where}: {sorted(names)}")


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise _unknown(cls, unknown, names, prefix)
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def open_section(cls: type[OpenSection], data: dict[str, Any], key: str) -> OpenSection:
    """An open section: ``enabled`` plus fields of ``cls.target()`` checked by name and type."""
    data = dict(data)
    enabled = _coerce(data.pop("enabled", cls.enabled), bool, f"{key}.enabled")
    for name, why in cls.RESERVED.items():
        if name in data:
            raise ConfigError(f"{key}.{name}: {why}")
    if not data:
        return cls(enabled=enabled, args={})
    target = cls.target()
    hints = typing.get_type_hints(target)
    fields = {f.name for f in dataclasses.fields(target) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: not a field of {target.__module__.split('.')[0]}'s "
                          f"{target.__name__}{did_you_mean(unknown[0], fields)}")
    return cls(enabled=enabled, args={k: _coerce(v, hints.get(k, Any), f"{key}.{k}") for k, v in data.items()})


# ---------------------------------------------------------------------------------------------- loading


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({exc.problem})") from None
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


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Read ``path`` (default: the shipped demo config), apply overrides, validate, return RunConfig."""
    data = _read(config_file(path if path is not None else DEMO))
    for assignment in overrides:
        _apply_override(data, assignment)
    cfg = build(RunConfig, data)
    validate(cfg)
    return cfg


def load_section(name: str, path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Any:
    """One section of a config (``verify``, ``pairs``, ``train``), checked, without loading the rest:
    what the commands that read only that section use (``--set`` outside it is refused). Without
    ``path`` the section starts from its defaults (TRL's own for ``train``), never from the demo's."""
    data = _read(config_file(path)) if path is not None else {}
    for assignment in overrides:
        key = assignment.split("=", 1)[0].strip()
        if not key.startswith(name + "."):
            raise ConfigError(f"--set {key}: this command reads only the {name} section; use --set {name}.KEY=VALUE")
        _apply_override(data, assignment)
    section = _coerce(data.get(name) or {}, typing.get_type_hints(RunConfig)[name], name)
    if name in SECTION_CHECKS:
        SECTION_CHECKS[name](section)
    return section


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False)


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
