"""starloop: a self-improvement training loop for reasoning with verifiable rewards.

The package is ``starloop``: ``starloop.loop`` (the loop, its stages and the command line),
``starloop.verifiers`` (math, code and the demo's step verifier; usable on their own, e.g. as TRL
rewards, without loading the loop), ``starloop.sandbox`` (isolated execution of untrusted code) and
``starloop.configs`` (the shipped configs). Used as a library::

    import starloop

    run_dir = starloop.run("my_experiment.yaml", iterations=3)        # starloop run
    result = starloop.evaluate_model("path/to/checkpoint")            # starloop eval
    verdicts = starloop.verify("math", items)                         # starloop verify (a batch)
    pairs, stats = starloop.build_pairs(verified_rows)                # starloop pairs
    cfg = starloop.load_config("my_experiment.yaml", ["seed=1"])
    reward = starloop.make_reward_func("math")                        # a TRL reward function

Exports are resolved on first use, so ``import starloop`` (or ``import starloop.verifiers``)
loads nothing of the loop, TRL or vLLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "run": ("starloop.loop.api", "run"),
    "evaluate_model": ("starloop.loop.api", "evaluate_model"),
    "build_pairs": ("starloop.loop.api", "build_pairs"),
    "load_config": ("starloop.loop.config", "load_config"),
    "verify": ("starloop.verifiers.registry", "verify_batch"),
    "make_reward_func": ("starloop.verifiers.reward", "make_reward_func"),
}

__all__ = ["__version__", "build_pairs", "evaluate_model", "load_config", "make_reward_func", "run", "verify"]
assert set(__all__) == {"__version__", *_EXPORTS}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve lazily
    from starloop.loop.api import build_pairs, evaluate_model, run
    from starloop.loop.config import load_config
    from starloop.verifiers.registry import verify_batch as verify
    from starloop.verifiers.reward import make_reward_func


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("starloop")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'starloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
