"""A teacher (``sampling.teacher``) samples and rationalizes in iterations 1..``iterations``, the student is
trained and evaluated; every sample says which model wrote it. Also the config keys of served sampling,
and what a run that samples its student through a server must be."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from starloop.loop.config import ConfigError, load_config
from starloop.loop.driver import Driver
from starloop.loop.errors import InputError
from starloop.loop.records import GenParams, SampleRequest, sample_from_row, sample_to_row, sft_row
from starloop.loop.runtime.artifacts import Artifacts
from starloop.loop.runtime.context import RunContext, resolve_teacher
from starloop.loop.runtime.prompts import Prompt, prompt_messages, render_prompt
from starloop.loop.runtime.rundir import RunDir
from starloop.loop.runtime.sampling import Sampling, teacher_sampling
from starloop.loop.runtime.served import check_run
from starloop.verifiers.records import Problem


@pytest.mark.parametrize(("overrides", "needle"), [
    (["sampling.backend=openai"], "sampling.base_url: required with sampling.backend: openai"),
    (["sampling.backend=openai", "sampling.base_url=http://h/v1", "sampling.data_parallel_size=2"],
     "sampling.data_parallel_size: the openai backend sends every request to one server"),
    (["sampling.server.concurrency=0"], "sampling.server: needs concurrency >= 1"),
    (["sampling.server.endpoint=responses"], "sampling.server.endpoint: expected one of ['completions', 'chat']"),
    (["sampling.teacher.iterations=2"], "other keys are set but not sampling.teacher.model"),
    (["sampling.teacher.model=t", "sampling.teacher.iterations=0"], "sampling.teacher.iterations: must be >= 1"),
    (["sampling.teacher.model=t", "sampling.teacher.backend=openai"], "sampling.teacher.base_url: required"),
    (["sampling.teacher.modle=t"], "did you mean 'model'"),
])
def test_bad_served_and_teacher_keys_are_named(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)


def test_teacher_inherits_the_students_server_settings():
    cfg = load_config(None, ["sampling.backend=openai", "sampling.base_url=http://s/v1", "sampling.api_key_env=KEY",
                             "sampling.served_model=student", "sampling.teacher.model=big",
                             "sampling.teacher.base_url=http://t/v1", "sampling.server.endpoint=chat"])
    t = teacher_sampling(cfg.sampling)
    assert (t.backend, t.base_url, t.api_key_env, t.served_model, t.server.endpoint) == \
           ("openai", "http://t/v1", "KEY", None, "chat")
    assert resolve_teacher(cfg) == ("big", t)  # a served teacher is its name on the server
    assert "KEY" not in json.dumps(cfg.to_dict()).replace('"KEY"', "")  # the name of the variable, never a key


def test_a_served_student_must_be_lora_unless_nothing_is_trained():
    cfg = load_config(None, ["sampling.backend=openai", "sampling.base_url=http://127.0.0.1:9/v1", "iterations=2"])
    with pytest.raises(ConfigError, match=r"full-weight student changes every iteration; enable train.lora") as err:
        check_run(cfg, "/models/student", None)
    assert "\n" not in str(err.value)
    nothing = load_config(None, ["sampling.backend=openai", "sampling.base_url=http://127.0.0.1:9/v1", "iterations=0"])
    with pytest.raises(ConfigError, match="no OpenAI-compatible server answers at http://127.0.0.1:9/v1"):
        check_run(nothing, "/models/student", None)  # allowed: then the server is checked before any work


def test_server_address_and_settings_may_change_between_invocations(tmp_path):
    """A run moved to another server (same served model) resumes; its run dir holds no key."""
    args = ["sampling.teacher.model=t", "sampling.teacher.backend=openai"]
    first = load_config(None, [*args, "sampling.teacher.base_url=http://a:1/v1"])
    rd = RunDir(tmp_path / "run")
    rd.init(first)
    assert rd.check(load_config(None, [*args, "sampling.teacher.base_url=http://b:2/v1", "sampling.server.timeout=5"]))


def test_prompts_carry_their_chat_turns():
    from starloop.loop.config import PromptConfig
    from starloop.loop.demo.tinymodel import build_char_tokenizer

    cfg = PromptConfig(system="Be brief.", fewshot=[{"prompt": "1+1", "completion": "2"}])
    p = render_prompt(build_char_tokenizer(), "2+3", cfg)
    assert isinstance(p, Prompt) and p == "Be brief.\nQ: 1+1\nA: 2</s>Q: 2+3\nA: "
    assert prompt_messages(p) == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1"},
                                  {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+3"}]
    assert pickle.loads(pickle.dumps(p)).messages == p.messages and json.dumps(p) == json.dumps(str(p))
    assert prompt_messages("plain text") == [{"role": "user", "content": "plain text"}]


def test_teacher_requests_go_to_the_teacher(tiny_model, tmp_path):
    """Routing by model: the teacher's requests run on the teacher's backend and say so; one engine at a time."""
    teacher = str(tmp_path / "teacher")
    shutil.copytree(tiny_model, teacher)
    cfg = load_config(None, ["sampling.backend=transformers", f"sampling.teacher.model={teacher}"]).sampling
    problems = [Problem(id=f"p{i}", task="math", prompt=f"{i}+1", answer=str(i + 1)) for i in range(3)]
    prompts = [f"Q: {p.prompt}\nA: " for p in problems]
    params = GenParams(n=2, temperature=1.0, max_tokens=4, seed=1)
    with Sampling(cfg, engine_seed=0, teacher=(teacher, teacher_sampling(cfg))) as sampling:
        taught = sampling.sample(SampleRequest(teacher, problems, prompts, params, iteration=1))
        assert sampling._live.model_path == teacher
        own = sampling.sample(SampleRequest(tiny_model, problems, prompts, params, iteration=1))
        assert sampling._live.model_path == tiny_model  # the teacher's engine was released first
    assert {(s.sampler, s.model) for s in taught} == {("teacher", teacher)}
    assert {(s.sampler, s.model) for s in own} == {("student", tiny_model)}
    row = sample_to_row(taught[0])
    assert row["sampler"] == "teacher" and sample_from_row(row).sampler == "teacher"
    assert sft_row(taught[0], "selfgen")["sampler"] == "teacher"


def test_sampler_model_switches_after_the_teachers_iterations(tmp_path):
    cfg = load_config(None, ["sampling.teacher.model=/models/t", "sampling.teacher.iterations=2"])
    rd = RunDir(tmp_path)
    ctx = RunContext(cfg, rd, Artifacts(rd), [], [], {}, "/models/base", None, None, False, "/models/t")
    assert [ctx.sampler_model(i) for i in (1, 2, 3)] == ["/models/t", "/models/t", str(rd.root / "iter-002/train/model")]
    assert ctx.model_for(2) == str(rd.root / "iter-002/train/model")  # evaluation: always the student
    ctx.teacher_model = None
    assert ctx.sampler_model(1) == "/models/base"


def test_teacher_for_the_first_iteration_then_the_student(tmp_path, tiny_overrides, tiny_model):
    """Two iterations, an in-process teacher in iteration 1 only: iteration 2 samples the student's checkpoint."""
    cfg = load_config(None, [*tiny_overrides, "iterations=2", "sampling.backend=transformers",
                             f"sampling.teacher.model={tiny_model}", "sampling.teacher.iterations=1",
                             "select.include_unverified=true"])
    driver = Driver(cfg, tmp_path / "run")
    assert [m["iteration"] for m in driver.run()] == [0, 1, 2]
    root = driver.rd.root

    def who(path):
        return {(r["sampler"], r["model"]) for r in map(json.loads, (root / path).read_text().splitlines())}

    assert who("iter-001/sample/samples.jsonl") == {("teacher", tiny_model)}
    assert who("iter-002/sample/samples.jsonl") == {("student", str(root / "iter-001/train/model"))}
    assert who("iter-001/evaluate/greedy.jsonl") == {("student", str(root / "iter-001/train/model"))}


def test_distillation_config_names_its_teacher(tmp_path):
    """configs/distill.yaml's teacher is the last checkpoint of configs/distill-teacher.yaml's run; a teacher
    folder that is missing is an error naming the key before any work."""
    distill, teacher = load_config("configs/distill.yaml"), load_config("configs/distill-teacher.yaml")
    assert distill.sampling.teacher.model == f"{teacher.runs_dir}/{teacher.name}/iter-{teacher.iterations:03d}/train/model"
    assert distill.model == teacher.model
    with pytest.raises(InputError, match="sampling.teacher.model: no such model folder: runs/distill-teacher/"):
        resolve_teacher(distill)
