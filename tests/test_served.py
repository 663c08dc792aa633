"""The openai backend against a real vLLM OpenAI-compatible server of the tiny seed model, started by these
tests on 127.0.0.1 (one server for the file), and a small proxy in front of it that fails, delays or counts
requests: a real failure of the server's HTTP answers, no mock of the client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from starloop.loop.config import ConfigError, SamplingConfig, ServerConfig, load_config
from starloop.loop.driver import Driver
from starloop.loop.records import GenParams, SampleRequest
from starloop.loop.runtime.models import resolve_model
from starloop.loop.runtime.prompts import Prompt
from starloop.loop.runtime.rundir import Parts
from starloop.loop.runtime.samplers import TransformersSampler
from starloop.loop.runtime.sampling import Sampling
from starloop.loop.runtime.served import ServedSampler, ServerFailed
from starloop.verifiers.records import Problem
from starloop.verifiers.registry import VerifyItem, verify_batch, verify_one

from .conftest import TINY_OVERRIDES, require_vllm

pytestmark = require_vllm
NAME = "seed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def seed_model(starloop_cache) -> str:
    """The tiny loop's seed model (built once per session, as the loop tests build it)."""
    cfg = load_config(None, TINY_OVERRIDES)
    return resolve_model(cfg.model, cfg.prompt, cfg.seed)


@pytest.fixture(scope="module")
def server(seed_model, tmp_path_factory):
    """``python -m vllm.entrypoints.openai.api_server`` on the seed model (served as ``seed``), runtime LoRA
    loading on; its base URL."""
    port, log = free_port(), tmp_path_factory.mktemp("server") / "vllm.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", seed_model, "--served-model-name",
           NAME, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--max-model-len", "256",
           "--dtype", "float32", "--seed", "0", "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class Proxy(ThreadingHTTPServer):
    """Forwards to ``upstream``; answers 503 to every POST after ``allow`` forwarded ones (None: never),
    delays POSTs by ``delay`` seconds, and counts forwarded POSTs and the most in flight at once."""

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream, self.allow, self.delay = upstream.removesuffix("/v1"), None, 0.0
        self.forwarded = self.inflight = self.peak = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Forward(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, data: bytes | None) -> None:
        req = urllib.request.Request(self.server.upstream + self.path, data=data, method=self.command,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                self._reply(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read())

    def do_GET(self):
        self._forward(None)

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        p = self.server
        with p.lock:
            if p.allow is not None and p.forwarded >= p.allow:
                refuse = True
            else:
                refuse, p.forwarded, p.inflight = False, p.forwarded + 1, p.inflight + 1
                p.peak = max(p.peak, p.inflight)
        if refuse:
            return self._reply(503, b'{"error": {"message": "overloaded", "type": "ServiceUnavailable"}}')
        try:
            time.sleep(p.delay)
            self._forward(data)
        finally:
            with p.lock:
                p.inflight -= 1


@pytest.fixture
def proxy(server):
    p = Proxy(server)
    yield p
    p.shutdown()
    p.server_close()


def served_cfg(url: str, **server) -> SamplingConfig:
    return SamplingConfig(backend="openai", base_url=url, server=ServerConfig(**{"max_retries": 1, **server}))


PROMPTS = [f"Q: {a}+{b}\nA: " for a in range(4) for b in range(3)]
PROBLEMS = [Problem(id=f"p{i}", task="arithmetic", prompt=p, answer="0") for i, p in enumerate(PROMPTS)]


def test_generation_matches_the_in_process_model(server, seed_model):
    """n, stop, max_tokens, finish_reason and token counts; greedy completions equal the transformers backend's."""
    sampler = ServedSampler(NAME, served_cfg(server))
    greedy = sampler.generate(PROMPTS[:4], GenParams(1, 0.0, 1.0, 24))
    local = TransformersSampler(seed_model, SamplingConfig(backend="transformers")).generate(PROMPTS[:4],
                                                                                            GenParams(1, 0.0, 1.0, 24))
    assert [g[0].text for g in greedy] == [g[0].text for g in local]
    assert [g[0].finish_reason for g in greedy] == [g[0].finish_reason for g in local]
    sampled = sampler.generate(PROMPTS[:3], GenParams(3, 1.0, 1.0, 5, seed=7))
    assert [len(g) for g in sampled] == [3, 3, 3]
    for g in sum(sampled, []):
        assert g.num_tokens <= 5 and (g.finish_reason == "stop" or g.num_tokens == 5)
        assert g.finish_reason != "length" or len(g.text) == 5  # a character tokenizer: one token, one character
    again = sampler.generate(PROMPTS[:3], GenParams(3, 1.0, 1.0, 5, seed=7))
    assert again == sampled  # the per-request seed, from the call's seed and the prompt
    stopped = sampler.generate(PROMPTS[:4], GenParams(2, 1.0, 1.0, 24, stop=("=", "\n"), seed=1))
    assert all("=" not in g.text and "\n" not in g.text for g in sum(stopped, []))
    sampler.close()


def test_chat_endpoint_sends_the_turns(server):
    """endpoint: chat sends a Prompt's chat turns; the server applies the same template, so the same text comes back."""
    prompts = [Prompt(p, [{"role": "user", "content": p[3:-4]}]) for p in PROMPTS[:3]]
    completions = ServedSampler(NAME, served_cfg(server)).generate(prompts, GenParams(1, 0.0, 1.0, 16))
    chat = ServedSampler(NAME, served_cfg(server, endpoint="chat")).generate(prompts, GenParams(1, 0.0, 1.0, 16))
    assert chat == completions


def test_down_server_and_another_model_are_one_line_errors(server):
    with pytest.raises(ConfigError, match=r"no OpenAI-compatible server answers at http://127.0.0.1:\d+/v1"):
        ServedSampler(NAME, served_cfg(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(ConfigError, match=r"serves \['seed'\], not 'Qwen/Qwen2.5-0.5B'") as err:
        ServedSampler("Qwen/Qwen2.5-0.5B", served_cfg(server))
    assert "\n" not in str(err.value)


def test_concurrency_is_bounded(proxy):
    proxy.delay = 0.2
    ServedSampler(NAME, served_cfg(proxy.url, concurrency=3)).generate(PROMPTS, GenParams(1, 0.0, 1.0, 4))
    assert proxy.forwarded == len(PROMPTS) and 1 < proxy.peak <= 3


def test_transient_errors_are_retried(proxy):
    """Requests refused with 503 are retried with backoff by the client; the call succeeds once they pass."""
    proxy.allow = 0
    threading.Timer(1.0, lambda: setattr(proxy, "allow", None)).start()
    out = ServedSampler(NAME, served_cfg(proxy.url, max_retries=5)).generate(PROMPTS[:2], GenParams(1, 0.0, 1.0, 4))
    assert len(out) == 2 and proxy.forwarded == 2


def test_timeout(proxy):
    proxy.delay = 3.0
    with pytest.raises(ServerFailed, match="failed after 0 retries"):
        ServedSampler(NAME, served_cfg(proxy.url, timeout=0.5, max_retries=0)).generate(PROMPTS[:1],
                                                                                       GenParams(1, 0.0, 1.0, 4))


def test_failure_mid_stage_keeps_the_finished_requests(proxy, tmp_path):
    """The server fails after 5 requests: the stage stops with a one-line error, the 5 are kept, and the rerun
    sends only the 7 missing ones; the result equals an uninterrupted call's."""
    cfg = served_cfg(proxy.url, concurrency=1, max_retries=1)
    request = SampleRequest(NAME, PROBLEMS, PROMPTS, GenParams(2, 1.0, 1.0, 6, seed=3), iteration=1)
    parts = tmp_path / "parts"
    proxy.allow = 5
    with Sampling(cfg, engine_seed=0, parts=lambda key: Parts(parts)) as sampling, \
            pytest.raises(ServerFailed, match="5 of 12 requests finished") as err:
        sampling.sample(request)
    assert "\n" not in str(err.value) and len(list(parts.glob("request-*.jsonl"))) == 5
    proxy.allow, proxy.forwarded = None, 0
    with Sampling(cfg, engine_seed=0, parts=lambda key: Parts(parts)) as sampling:
        resumed = sampling.sample(request)
    assert proxy.forwarded == 7
    with Sampling(cfg, engine_seed=0) as sampling:
        whole = sampling.sample(request)
    assert [(s.problem_id, s.completion, s.num_tokens) for s in resumed] == \
           [(s.problem_id, s.completion, s.num_tokens) for s in whole]
    assert {s.sampler for s in resumed} == {"student"} and {s.model for s in resumed} == {NAME}


def test_judge_verifier_through_a_server(proxy, tmp_path):
    """The judge verifier asks the served tiny model through the proxy: the plumbing, not the judgement (the
    tiny model answers arithmetic chains, so the rubric is one). Replies with a score are cached: the same batch
    again sends nothing but what ended in an error; a request past its timeout is a timeout verdict."""
    opts = {"base_url": proxy.url, "model": NAME, "endpoint": "completions", "rubric": "Q: {completion}\nA: ",
            "score_pattern": r"#### (\d+)", "max_tokens": 24, "max_retries": 1, "concurrency": 2,
            "cache": str(tmp_path / "judge.sqlite")}
    problem = Problem("j1", "judge", "Write a chain of additions.")
    chains = ["1+2", "3+4", "2+2", "5+1"]
    items = [VerifyItem(c, problem) for c in chains]
    first = verify_batch("judge", items, options=opts)
    assert proxy.forwarded == len(chains)
    for chain, verdict in zip(chains, first, strict=True):
        req = urllib.request.Request(f"{proxy.upstream}/v1/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"model": NAME, "prompt": f"Q: {chain}\nA: ", "max_tokens": 24,
                                                      "temperature": 0.0}).encode())
        with urllib.request.urlopen(req, timeout=60) as resp:  # the judge's own text, asked directly
            text = json.loads(resp.read())["choices"][0]["text"]
        assert verdict.reason in {"ok", "wrong", "error"} and verdict.verifier == "judge", verdict
        assert (verdict.detail == text) if verdict.reason != "error" else (repr(text[:300]) in verdict.detail)
    errors = sum(v.reason == "error" for v in first)
    again = verify_batch("judge", items, options=opts)
    assert proxy.forwarded == len(chains) + errors  # errors asked again; cached replies not at all
    assert [v for v in again if v.reason != "error"] == [v for v in first if v.reason != "error"]
    # Sampled replies of the tiny model are random characters: reading any digit as the score, nearly all
    # of them score, so the cache is filled and the same batch comes back from it without a request.
    sampled = {**opts, "temperature": 1.0, "score_pattern": r"(\d)", "max_score": 9}
    before = proxy.forwarded
    scored = verify_batch("judge", items, options=sampled)
    assert proxy.forwarded == before + len(chains)
    hits = [v for v in scored if v.reason in ("ok", "wrong")]
    assert hits and all(0.0 <= v.score <= 1.0 and v.detail for v in hits)
    repeat = verify_batch("judge", items, options=sampled)
    assert proxy.forwarded == before + len(chains) + (len(chains) - len(hits))
    assert [r for r, v in zip(repeat, scored, strict=True) if v.reason in ("ok", "wrong")] == hits
    proxy.delay = 2.0
    late = verify_one("judge", "7+1", problem, options={**opts, "timeout": 0.5, "max_retries": 0})
    assert late.reason == "timeout" and "took over 0.5s" in late.detail
    while proxy.inflight:  # the late request still reaches the server: let it finish while the server is up
        time.sleep(0.1)


def _run(tmp_path, server, extra):
    cfg = load_config(None, [*TINY_OVERRIDES, "select.include_unverified=true", *extra])
    driver = Driver(cfg, tmp_path / "run")
    return driver, driver.run()


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_iteration_with_a_served_teacher(server, tmp_path, starloop_cache):
    """The student (in-process) is trained and evaluated; the served teacher samples and rationalizes."""
    driver, metrics = _run(tmp_path, server, ["sampling.backend=transformers", f"sampling.teacher.model={NAME}",
                                              "sampling.teacher.backend=openai", f"sampling.teacher.base_url={server}"])
    assert [m["iteration"] for m in metrics] == [0, 1]
    root = driver.rd.root
    sampled = _rows(root / "iter-001/verify/verified.jsonl")
    assert len(sampled) == 24 * 2 and {(s["sampler"], s["model"]) for s in sampled} == {("teacher", NAME)}
    assert {s["sampler"] for s in _rows(root / "iter-001/rationalize/hinted.jsonl")} <= {"teacher"}
    assert {(s["sampler"], s["model"]) for s in _rows(root / "iter-001/evaluate/greedy.jsonl")} == \
           {("student", str(root / "iter-001/train/model"))}
    assert {r["sampler"] for r in _rows(root / "iter-001/select/sft.jsonl") if r["source"] != "real"} == {"teacher"}


def test_two_iterations_with_a_served_lora_student(server, tmp_path, seed_model, starloop_cache):
    """Each iteration's adapter is loaded into the running server by name and trained further from there; the
    served adapter decodes as the merged checkpoint does in process."""
    driver, metrics = _run(tmp_path, server, ["iterations=2", "sampling.backend=openai", f"sampling.base_url={server}",
                                              f"sampling.served_model={NAME}", "train.lora.enabled=true",
                                              "train.lora.r=8", "train.lora.lora_alpha=16",
                                              "train.sft.learning_rate=3e-2"])
    assert [m["iteration"] for m in metrics] == [0, 1, 2]
    root = driver.rd.root
    assert {s["model"] for s in _rows(root / "iter-002/sample/samples.jsonl")} == {str(root / "iter-001/train/model")}
    adapter = json.loads((root / "iter-002/train/model/adapter/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == seed_model  # continued on the served base, not on a merge
    checkpoint = str(root / "iter-002/train/model")
    served = ServedSampler(checkpoint, served_cfg(server)).generate(PROMPTS[:4], GenParams(1, 0.0, 1.0, 24))
    local = TransformersSampler(checkpoint, SamplingConfig(backend="transformers")).generate(PROMPTS[:4],
                                                                                            GenParams(1, 0.0, 1.0, 24))
    base = ServedSampler(NAME, served_cfg(server)).generate(PROMPTS[:4], GenParams(1, 0.0, 1.0, 24))
    assert served == local and served != base


def test_full_weight_student_on_a_server_is_refused(server, tmp_path, starloop_cache):
    with pytest.raises(ConfigError, match="enable train.lora"):
        _run(tmp_path, server, ["sampling.backend=openai", f"sampling.base_url={server}", f"sampling.served_model={NAME}"])


def test_eval_command_on_a_served_model(server, tmp_path, starloop_cache, capsys):
    """`starloop eval` of a model only the server knows (prompts rendered with model.path's tokenizer); a down
    server is exit status 2 with one line."""
    from starloop.loop.cli.main import main

    sets = sum((["--set", o] for o in [*TINY_OVERRIDES, "sampling.backend=openai", f"sampling.base_url={server}"]), [])
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", NAME, *sets, "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == NAME and result["problems"] == 12 and 0.0 <= result["pass@1"] <= 1.0
    capsys.readouterr()
    down = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["eval", "--model", NAME, *sets, "--set", f"sampling.base_url={down}", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"no OpenAI-compatible server answers at {down}" in err


def test_synthesis_judge_filter_through_a_server(server, tmp_path):
    """The synthesize stage's judge filter asks the served model about each proposal (random characters from
    the tiny model, a digit read as the score): the ones it passes go on, the others are counted as rejected."""
    from starloop.loop.runtime.synthesis import FILTERS
    from starloop.loop.stages.synthesize import judged

    options = {"base_url": server, "model": NAME, "endpoint": "completions", "rubric": "Q: {completion}\nA: ",
               "score_pattern": r"(\d)", "max_score": 9, "threshold": 0.5, "temperature": 1.0, "max_tokens": 24,
               "cache": str(tmp_path / "judge.sqlite")}
    cands = [Problem(f"syn-001-{j:04d}", "arithmetic", f"{j}+{j + 1}-1") for j in range(6)]
    records = [{"proposal": j, "rejected_by": None} for j in range(6)]
    counts = dict.fromkeys(FILTERS, 0)
    kept = judged(options, cands, ["Q: 1+2\nQ: "] * 6, counts, records)
    assert len(kept) + counts["judge"] == 6
    assert all(("judge" in r) and (r["rejected_by"] == "judge") == (c not in kept) for r, c in zip(records, cands, strict=True))
    assert all(r["judge"]["score"] >= 0.5 for r, c in zip(records, cands, strict=True) if c in kept)
