"""MBPP (``google-research-datasets/mbpp``, configs ``full`` and ``sanitized``): short Python tasks.

Schema: ``task_id``, ``text`` (``prompt`` in the sanitized config), ``code`` (reference solution),
``test_list`` (assert statements), ``test_setup_code`` (``test_imports`` in the sanitized config),
``challenge_test_list``. The problem's tests are the setup code and imports followed by the
asserts; they run after the model's solution (``code`` verifier).

The prompt is the task description followed by the first test (``options.shown_tests``), as the
MBPP paper's prompt does: the assert names the function and shows how it is called, which the
description alone does not. The function name is also kept in ``meta["entry_point"]``.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

from starloop.loop.config import DatasetConfig
from starloop.loop.errors import InputError
from starloop.loop.tasks.generic import LoadOptions, first_present, load_rows, parse_options, require
from starloop.loop.tasks.registry import register_adapter
from starloop.verifiers.records import Problem

_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")
_BUILTINS = set(dir(builtins))


@dataclass
class MbppOptions(LoadOptions):
    shown_tests: int = 1
    """How many of the asserts the prompt shows (the MBPP paper shows all three)."""
    challenge_tests: bool = False
    """Also run ``challenge_test_list`` (the full config's harder extra tests)."""


def defined_functions(code: str) -> list[str]:
    """Names of the top-level functions defined in ``code`` (regex fallback for code that does not parse)."""
    try:
        return [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    except SyntaxError:
        return re.findall(r"^def\s+([A-Za-z_]\w*)", code, flags=re.M)


def function_name(test: str, code: str = "") -> str | None:
    """The function a test assert calls: the first called name the reference code defines, else the
    first called name that is not a builtin (``assert math.isclose(area(2), 12.5)`` -> ``area``)."""
    called = _CALL.findall(test)
    defined = set(defined_functions(code)) if code else set()
    for name in called:
        if name in defined:
            return name
    return next((n for n in called if n not in _BUILTINS and n != "assert"), None)


def render_prompt_text(description: str, tests: list[str], name: str | None, shown: int) -> str:
    text = description.strip()
    if shown > 0:
        head = "Your code should pass this test:" if min(shown, len(tests)) == 1 else "Your code should pass these tests:"
        return f"{text}\n{head}\n" + "\n".join(t.strip() for t in tests[:shown])
    return f"{text} The function must be named `{name}`." if name else text


@register_adapter("mbpp")
def mbpp(cfg: DatasetConfig, seed: int) -> list[Problem]:
    opts = parse_options(MbppOptions, cfg)
    problems = []
    for row in load_rows(cfg, opts):
        require(row, ["task_id", "test_list"], cfg, "MBPP")
        desc_field = first_present(row, ["text", "prompt"], cfg, "MBPP")
        tests = [str(t) for t in row["test_list"]]
        if not tests:
            raise InputError(f"mbpp ({cfg.path}) row {row['_index']}: field 'test_list' is empty")
        code = str(row.get("code") or "")
        name = function_name(tests[0], code)
        setup = [str(row.get("test_setup_code") or "").strip(), *[str(x) for x in row.get("test_imports") or []]]
        challenge = [str(t) for t in row.get("challenge_test_list") or []] if opts.challenge_tests else []
        test_code = "\n".join([*(s for s in setup if s), *tests, *challenge]) + "\n"
        meta = {"source": "mbpp", "task_id": row["task_id"], "solution": code}
        if name:
            meta["entry_point"] = name
        problems.append(
            Problem(
                id=f"mbpp-{row['task_id']}",
                task=cfg.task or "code",
                prompt=render_prompt_text(str(row[desc_field]), tests, name, opts.shown_tests),
                tests=test_code,
                meta=meta,
            )
        )
    return problems
