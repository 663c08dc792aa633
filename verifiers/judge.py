"""The ``judge`` verifier: an LLM judge on any OpenAI-compatible server grades a completion.

For tasks with no programmatic check (open-ended answers, explanations) and for filtering synthesized
problems. The judge gets a rubric (a template of ``{prompt}``, ``{completion}``, ``{answer}``) and ends its
explanation with a score, read by ``score_pattern`` (the last match wins); the score over ``max_score``,
clipped to [0, 1], is the verdict's score, correct iff at least ``threshold``. Options: :class:`JudgeConfig`
(``verify.options.judge``); HTTP through the standard library only.

Reasons: ``ok`` / ``wrong`` (by the threshold); ``truncated`` (``finish_reason == "length"``) and
``unparseable`` (an empty completion), neither sent to the judge; ``error`` (no score in the judge's
output, or the server failed after ``max_retries`` retries); ``timeout`` (a request ran past ``timeout``).
None of these raises; a bad option or rubric is a ValueError when the config is built, before any request.

Cache: the judge's output, keyed by (judge model, rubric, endpoint, prompt, completion, answer,
max_tokens, temperature), is kept in a sqlite3 file and scored again from there without a request (a
changed threshold or score_pattern applies to it). Outputs without a score are not kept, nor are failed
requests: ``error`` and ``timeout`` verdicts are asked again next time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sqlite3
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import VerifyItem, register_verifier

__all__ = ["JudgeCache", "JudgeConfig", "Reply", "render", "score_reply", "verify_judge", "verify_judge_batch"]

VERSION = "1"
PLACEHOLDERS = ("prompt", "completion", "answer")
DETAIL_CHARS = 2000
BACKOFF_S, MAX_BACKOFF_S = 0.5, 30.0
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_INSTRUCTION = ("Explain briefly whether the response correctly and completely does what the task asks, "
                "then end with a line of the form SCORE: <0-10> (10: fully correct, 0: wrong or no answer).")
RUBRIC = ("You are grading a response to a task.\n\nTask:\n{prompt}\n\nResponse:\n{completion}\n\n"
          + _INSTRUCTION)
RUBRIC_WITH_ANSWER = ("You are grading a response to a task against a reference answer.\n\nTask:\n{prompt}\n\n"
                      "Reference answer:\n{answer}\n\nResponse:\n{completion}\n\n" + _INSTRUCTION)
_BRACES = "write a literal brace as {{ or }}"


def default_cache() -> str:
    """``judge.sqlite`` in starloop's cache folder (``$STARLOOP_CACHE``, default ``~/.cache/starloop``)."""
    return str(Path(os.environ.get("STARLOOP_CACHE", "~/.cache/starloop")).expanduser() / "judge.sqlite")


def placeholders(template: str) -> set[str]:
    """The placeholders of a rubric; ValueError for a malformed or unknown one."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"judge rubric is not a valid template ({exc}); {_BRACES}") from None
    unknown = sorted(names - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"judge rubric has unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
                         f"known: {{prompt}}, {{completion}}, {{answer}} ({_BRACES})")
    return names


@dataclass(frozen=True)
class JudgeConfig:
    """Options of the judge verifier (``verify.options.judge`` in a run config)."""

    base_url: str = ""
    """The judge server's URL, e.g. ``http://127.0.0.1:8000/v1`` (required)."""
    model: str = ""
    """The name the server serves the judge model under (required)."""
    rubric: str | None = None
    """The judge's prompt: a template of {prompt}, {completion} and optionally {answer} (literal braces
    doubled). None: a built-in rubric asking for an explanation and a last line ``SCORE: <0-10>``, with the
    reference answer when the problem has one."""
    endpoint: str = "chat"
    """chat: POST {base_url}/chat/completions with the rubric as one user message; completions: POST
    {base_url}/completions with the rubric as the prompt."""
    score_pattern: str = r"SCORE\s*:\s*\**\s*(-?\d+(?:\.\d+)?)"
    """A regular expression (case-insensitive) whose first group is the score; the last match wins."""
    max_score: float = 10.0
    threshold: float = 0.7
    """Correct iff score / max_score (clipped to [0, 1]) >= threshold."""
    max_tokens: int = 512
    temperature: float = 0.0
    timeout: float = 120.0
    """Seconds one request may take; past it the verdict is ``timeout`` (not retried)."""
    max_retries: int = 3
    """Retries after a connection error, HTTP 408, 429 or 5xx, with exponential backoff from 0.5 s."""
    concurrency: int = 8
    """Requests in flight at once."""
    cache: str | None = field(default_factory=default_cache)
    """The cache file (sqlite3); null or empty: no cache."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable holding the server's API key (unset: no key, as a local vLLM server takes)."""

    def __post_init__(self) -> None:
        for name, what in (("base_url", "the judge server's URL, e.g. http://127.0.0.1:8000/v1"),
                           ("model", "the name the server serves the judge model under")):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"judge option {name} is required: {what}")
        if self.endpoint not in ("chat", "completions"):
            raise ValueError(f"judge option endpoint must be 'chat' or 'completions', got {self.endpoint!r}")
        if self.rubric is not None and "completion" not in placeholders(self.rubric):
            raise ValueError("judge rubric has no {completion} placeholder: the judge would not see the completion")
        try:
            groups = re.compile(self.score_pattern).groups
        except re.error as exc:
            raise ValueError(f"judge option score_pattern is not a regular expression: {exc}") from None
        if groups < 1:
            raise ValueError(f"judge option score_pattern needs a group around the score: {self.score_pattern!r}")
        if not self.max_score > 0 or not 0 <= self.threshold <= 1:
            raise ValueError(f"judge options: max_score must be > 0 and threshold in [0, 1], got "
                             f"{self.max_score!r} and {self.threshold!r}")
        if self.max_tokens < 1 or self.temperature < 0 or not self.timeout > 0:
            raise ValueError("judge options: max_tokens must be >= 1, temperature >= 0 and timeout > 0")
        if self.max_retries < 0 or self.concurrency < 1:
            raise ValueError("judge options: max_retries must be >= 0 and concurrency >= 1")

    def template(self, problem: Problem) -> str:
        """The rubric for ``problem``: the configured one, else the built-in one (with its answer if it has one)."""
        if self.rubric is not None:
            return self.rubric
        return RUBRIC if problem.answer is None else RUBRIC_WITH_ANSWER


def render(template: str, completion: str, problem: Problem) -> str:
    """The judge's prompt; ValueError if the template needs an answer the problem does not have."""
    if problem.answer is None and "answer" in placeholders(template):
        raise ValueError(f"judge problem {problem.id!r} has no answer, but the rubric uses {{answer}}")
    return template.format(prompt=problem.prompt, completion=completion, answer=problem.answer or "")


@dataclass(frozen=True)
class Reply:
    """What the judge said, and why it stopped (``length``: cut at ``max_tokens``)."""

    text: str
    finish_reason: str | None = None


def _shorten(text: str) -> str:
    if len(text) <= DETAIL_CHARS:
        return text
    half = DETAIL_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters ...]\n{text[-half:]}"


def score_reply(reply: Reply, config: JudgeConfig) -> Verdict:
    """The verdict the judge's reply gives: ok or wrong by the threshold, error without a score."""
    matches = list(re.finditer(config.score_pattern, reply.text, re.IGNORECASE))
    if not matches:
        cut = f" (its output was cut at max_tokens={config.max_tokens})" if reply.finish_reason == "length" else ""
        return Verdict.fail("error", None, f"the judge gave no score{cut}; its output began: {reply.text[:300]!r}")
    found = matches[-1].group(1)
    try:
        value = float(found)
    except (TypeError, ValueError):
        return Verdict.fail("error", found, f"the judge's score {found!r} is not a number")
    score = min(1.0, max(0.0, value / config.max_score))
    if score >= config.threshold:
        return Verdict.ok(found, _shorten(reply.text), score)
    return Verdict.fail("wrong", found, _shorten(reply.text), score)


# ---------------------------------------------------------------------------------------------
# requests


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _http_message(exc: urllib.error.HTTPError) -> str:
    message = ""
    try:
        message = exc.read().decode("utf-8", "replace")
        data = json.loads(message)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = str(error.get("message", message) if isinstance(error, dict) else error)
    except Exception:  # the body only words the message: the HTTP status alone will do
        pass
    return _one_line(f"HTTP {exc.code}: {message or exc.reason}")


def _post(url: str, body: dict[str, Any], config: JudgeConfig) -> Any:
    headers = {"Content-Type": "application/json"}
    if os.environ.get(config.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=config.timeout) as resp:
        return json.loads(resp.read())


def ask(config: JudgeConfig, text: str) -> Reply | Verdict:
    """The judge's reply to ``text``, or the ``error`` / ``timeout`` verdict of a request that failed for
    good (after ``max_retries`` retries of a connection error, HTTP 408, 429 or 5xx); never raises for that."""
    base = config.base_url.rstrip("/")
    if config.endpoint == "chat":
        url, body = f"{base}/chat/completions", {"messages": [{"role": "user", "content": text}]}
    else:
        url, body = f"{base}/completions", {"prompt": text}
    body.update(model=config.model, max_tokens=config.max_tokens, temperature=config.temperature)
    for attempt in range(config.max_retries + 1):
        delay = min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt)
        try:
            data = _post(url, body, config)
            break
        except urllib.error.HTTPError as exc:
            problem = _http_message(exc)
            if exc.code not in RETRY_STATUS:
                return Verdict.fail("error", None, f"judge request to {url} failed: {problem}")
            retry_after = (exc.headers or {}).get("Retry-After", "")
            delay = min(MAX_BACKOFF_S, float(retry_after)) if retry_after.strip().isdigit() else delay
        except (TimeoutError, urllib.error.URLError) as exc:
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                return Verdict.fail("timeout", None, f"judge request to {url} took over {config.timeout:g}s")
            problem = _one_line(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        except (OSError, http.client.HTTPException) as exc:
            problem = _one_line(f"{type(exc).__name__}: {exc}")
        except ValueError as exc:  # the answer is not JSON
            return Verdict.fail("error", None, f"judge server at {url} answered unreadably: {_one_line(exc)}")
        if attempt < config.max_retries:
            time.sleep(delay)
    else:
        return Verdict.fail("error", None, f"judge server at {url} failed after {config.max_retries} retries: "
                                           f"{problem}")
    try:
        choice = data["choices"][0]
        out = choice["message"]["content"] if config.endpoint == "chat" else choice["text"]
        return Reply(str(out or ""), choice.get("finish_reason"))
    except (KeyError, IndexError, TypeError, AttributeError):
        return Verdict.fail("error", None, f"judge server at {url} answered without a choice: "
                                           f"{_one_line(json.dumps(data))}")


# ---------------------------------------------------------------------------------------------
# cache


class JudgeCache:
    """The judge's replies by key in a sqlite3 file (WAL journal: several threads and processes share it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                         "finish_reason TEXT, created REAL NOT NULL)")

    @staticmethod
    def key(config: JudgeConfig, template: str, completion: str, problem: Problem) -> str:
        """The hash of everything the judge's reply depends on."""
        parts = [config.model, template, config.endpoint, problem.prompt, completion, problem.answer,
                 config.max_tokens, config.temperature]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> Reply | None:
        with self._lock:
            row = self._db.execute("SELECT text, finish_reason FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else Reply(row[0], row[1])

    def put(self, key: str, reply: Reply) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                             (key, reply.text, reply.finish_reason, time.time()))

    def close(self) -> None:
        self._db.close()


# ---------------------------------------------------------------------------------------------
# the verifier


def check_problem(problem: Problem) -> None:
    """A judged problem needs a prompt (its answer, if any, is shown to the judge as a reference)."""
    if not isinstance(problem.prompt, str) or not problem.prompt.strip():
        raise ValueError(f"judge problem {problem.id!r} has an empty prompt")


def verify_judge_batch(items: Sequence[VerifyItem], config: JudgeConfig | None = None,
                       workers: int = 1) -> list[Verdict]:
    """Judge ``items`` with up to ``config.concurrency`` requests in flight (``workers``, the verifier
    processes of other verifiers, is not used); identical items are asked once, cached replies not at all.
    Results are in input order; a rubric that needs a missing answer raises before any request."""
    if not isinstance(config, JudgeConfig):
        raise ValueError("the judge verifier needs options (verify.options.judge): base_url and model at least")
    verdicts: list[Verdict | None] = [None] * len(items)
    todo: dict[str, tuple[str, list[int]]] = {}  # key -> (the judge's prompt, the items it answers)
    for k, item in enumerate(items):
        check_problem(item.problem)
        template = config.template(item.problem)
        text = render(template, item.completion, item.problem)
        if item.finish_reason == "length":
            verdicts[k] = Verdict.fail("truncated", None, "the completion was cut at its length limit; not judged")
        elif not item.completion.strip():
            verdicts[k] = Verdict.fail("unparseable", None, "the completion is empty; not judged")
        else:
            key = JudgeCache.key(config, template, item.completion, item.problem)
            todo.setdefault(key, (text, []))[1].append(k)
    cache = JudgeCache(config.cache) if config.cache and todo else None
    try:
        def judge(key: str) -> Verdict:
            reply = cache.get(key) if cache is not None else None
            if reply is not None:
                return score_reply(reply, config)
            reply = ask(config, todo[key][0])
            if isinstance(reply, Verdict):
                return reply
            verdict = score_reply(reply, config)
            if cache is not None and verdict.reason not in ("error", "timeout"):
                cache.put(key, reply)
            return verdict

        keys = list(todo)
        with ThreadPoolExecutor(max(1, min(config.concurrency, len(keys)))) as pool:
            for key, verdict in zip(keys, pool.map(judge, keys), strict=True):
                for k in todo[key][1]:
                    verdicts[k] = verdict
    finally:
        if cache is not None:
            cache.close()
    assert all(v is not None for v in verdicts)
    return verdicts  # type: ignore[return-value]


@register_verifier("judge", version=VERSION, config_cls=JudgeConfig, batch_fn=verify_judge_batch,
                   check_problem=check_problem)
def verify_judge(
    completion: str, problem: Problem, *, finish_reason: str | None = None, config: JudgeConfig | None = None
) -> Verdict:
    """An LLM judge on an OpenAI-compatible server grades the completion against a rubric."""
    return verify_judge_batch([VerifyItem(completion, problem, finish_reason)], config, 1)[0]
