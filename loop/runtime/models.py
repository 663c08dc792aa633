"""Model paths: a Hugging Face directory or Hub id as given, or ``builtin:NAME``, a model that a
registered builder makes (and caches) on first use, such as the demo's seed model.

Built-in models register with :func:`register_builtin_model`; packages (the demo included)
make theirs known through the ``starloop.models`` entry-point group, so the driver has no
branch for any of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from starloop.loop.config import ConfigError, ModelConfig, PromptConfig
from starloop.loop.errors import InputError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "starloop.models"
Builder = Callable[[dict[str, Any], PromptConfig, Path, int], Path]
"""``(builtin_options, prompt config, cache dir, run seed) -> model directory``."""
_BUILDERS: dict[str, Builder] = {}


@dataclass(frozen=True)
class LoadOptions:
    """How a model's weights and tokenizer are loaded (``model.dtype``, ``model.trust_remote_code``), by
    every sampler, trainer and tokenizer of a run."""

    dtype: str = "auto"
    trust_remote_code: bool = False

    @classmethod
    def of(cls, model: ModelConfig) -> LoadOptions:
        return cls(model.dtype, model.trust_remote_code)

    def torch_dtype(self, default: Any) -> Any:
        """The ``torch.dtype`` to load with: the configured one, else ``default``."""
        import torch  # heavy: deferred

        return default if self.dtype == "auto" else getattr(torch, self.dtype)


def register_builtin_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``builtin:<name>`` is the model this function builds."""

    def deco(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return deco


def _builders() -> dict[str, Builder]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _BUILDERS:
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not hide the others
                log.error("could not load built-in model %s (%s): %s", ep.name, ep.value, exc)
    return _BUILDERS


def cache_dir() -> Path:
    """Where built-in models are cached (``STARLOOP_CACHE``, default ``~/.cache/starloop``)."""
    return Path(os.environ.get("STARLOOP_CACHE", "~/.cache/starloop")).expanduser()


def check_model(path: str, key: str = "model.path") -> None:
    """A local model folder must exist and hold a Hugging Face config; anything else is a Hub id."""
    p = Path(path).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise InputError(f"{key}: {path} is not a Hugging Face model folder (no config.json)")
    elif path.startswith(("/", ".", "~")) or path.count("/") > 1:
        raise InputError(f"{key}: no such model folder: {path}")


def resolve_model(model: ModelConfig, prompt: PromptConfig, seed: int) -> str:
    """The starting model's path; builds a ``builtin:`` model on first use."""
    if not model.path.startswith("builtin:"):
        check_model(model.path)
        return model.path
    name = model.path.split(":", 1)[1]
    builders = _builders()
    if name not in builders:
        raise ConfigError(f"model.path: unknown built-in model {model.path!r}; known: "
                          f"{['builtin:' + n for n in sorted(builders)]}")
    return str(builders[name](model.builtin_options, prompt, cache_dir(), seed))


TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


def load_tokenizer(model_path: str, load: LoadOptions | None = None):
    """The tokenizer of a model; a checkpoint without one is an error naming it."""
    from transformers import AutoTokenizer  # heavy: deferred

    p = Path(model_path).expanduser()
    if p.is_dir() and not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise InputError(f"{model_path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the tokenizer "
                         f"with the checkpoint")
    try:
        return AutoTokenizer.from_pretrained(model_path, trust_remote_code=bool(load and load.trust_remote_code))
    except (OSError, ValueError) as exc:
        raise InputError(f"could not load the tokenizer of {model_path}: {str(exc).splitlines()[0]}") from None
