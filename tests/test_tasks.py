"""Task adapters on fixture files in each dataset's real schema, prompts, configs for real models,
and one loop iteration end to end on GSM8K- and MBPP-schema files with the tiny model."""

import json
from pathlib import Path

import pytest

from starloop.loop.config import ConfigError, DatasetConfig, PromptConfig, load_config
from starloop.loop.errors import InputError
from starloop.loop.runtime.prompts import problem_prompts, render_prompt
from starloop.loop.tasks import adapter_names, load_problems
from starloop.loop.tasks.gsm8k import gold_answer
from starloop.loop.tasks.math_tasks import last_boxed
from starloop.loop.tasks.mbpp import function_name
from starloop.verifiers.registry import get_verifier

FIX = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def load(source, name=None, **kw):
    return load_problems(DatasetConfig(source=source, path=str(FIX / f"{name or source}.jsonl"), **kw))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_tests(code: str, tests: str) -> None:
    """Execute a (trusted, fixture) solution followed by its tests in a fresh namespace."""
    exec(compile(code + "\n" + tests, "<fixture>", "exec"), {})  # noqa: S102 - our own fixture code


# ---------------------------------------------------------------------------------------------- adapters


def test_builtin_adapters_registered():
    assert {"gsm8k", "math", "math500", "mbpp", "humaneval", "jsonl", "parquet", "hub", "mixed"} <= set(adapter_names())


def test_gsm8k_fixture():
    ps = load("gsm8k")
    assert [p.answer for p in ps] == ["72", "10", "5", "42", "3", "70000"]
    assert {p.task for p in ps} == {"math"} and len({p.id for p in ps}) == 6
    assert ps[0].prompt.startswith("Natalia sold clips") and ps[0].meta["solution"].endswith("#### 72")
    assert gold_answer("so 1,234 in all\n#### 1,234") == "1234" and gold_answer("no marker") is None


def test_split_slices_keep_whole_split_indices():
    head, tail = load("gsm8k", split="train[:4]"), load("gsm8k", split="train[4:]")
    assert [p.id for p in head] == [f"gsm8k-train-{i}" for i in range(4)]
    assert [p.id for p in tail] == ["gsm8k-train-4", "gsm8k-train-5"]  # no collision with the head's ids
    assert [p.id for p in load("gsm8k", split="train[50%:]")] == [f"gsm8k-train-{i}" for i in (3, 4, 5)]


def test_math_fixture():
    ps = load("math")
    assert [p.answer for p in ps] == ["\\frac{14}{3}", "2", "10", "20\\sqrt3", "4"]
    assert [p.meta["level"] for p in ps] == [3, 3, 1, 3, 2]
    assert ps[3].meta["subject"] == "Intermediate Algebra" and ps[3].meta["type"] == "Intermediate Algebra"
    assert [p.answer for p in load("math", options={"levels": [3], "subjects": ["algebra"]})] == ["\\frac{14}{3}", "2"]


def test_last_boxed():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert last_boxed("$\\fbox{x^{2}}$") == "x^{2}"
    assert last_boxed("so \\boxed 5.") == "5" and last_boxed("so $\\boxed 5$") == "5"
    assert last_boxed("no answer") is None and last_boxed("\\boxed{unclosed") is None


def test_math500_fixture():
    ps = load("math500")
    assert ps[0].id == "math500-test/precalculus/807.json"
    assert [p.answer for p in ps] == ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "\\frac{14}{3}", "9"]
    assert [p.meta["level"] for p in ps] == [2, 5, 3, 3] and ps[1].meta["subject"] == "Intermediate Algebra"


def test_mbpp_fixture_prompt_tests_and_entry_point():
    ps = load("mbpp")
    p = ps[0]
    assert p.id == "mbpp-3" and p.task == "code" and p.answer is None
    assert p.prompt == ("Write a python function to identify non-prime numbers.\n"
                        "Your code should pass this test:\nassert is_not_prime(2) == False")
    assert p.tests.splitlines() == ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True",
                                    "assert is_not_prime(35) == True"]
    # the function the first test calls, even when the reference code defines a helper first
    assert [q.meta["entry_point"] for q in ps] == ["is_not_prime", "heap_queue_largest", "differ_At_One_Bit_Pos",
                                                   "find_Volume", "square_perimeter", "remove_dirty_chars"]
    for q in ps:  # the reference solution passes the assembled tests
        run_tests(q.meta["solution"], q.tests)
    with pytest.raises(AssertionError):
        run_tests("def is_not_prime(n):\n    return True", ps[0].tests)


def test_mbpp_options_and_sanitized_schema(tmp_path):
    three = load("mbpp", options={"shown_tests": 3})[0]
    assert three.prompt.count("assert ") == 3 and "pass these tests" in three.prompt
    none = load("mbpp", options={"shown_tests": 0})[0]
    assert "assert" not in none.prompt and none.prompt.endswith("must be named `is_not_prime`.")
    # the sanitized config: `prompt` instead of `text`, `test_imports`; full-config setup code goes first too
    f = write_jsonl(tmp_path / "s.jsonl", [
        {"source_file": "x.py", "task_id": 12, "prompt": "Write a function to sort a matrix by row sums.",
         "code": "def sort_matrix(M):\n    return sorted(M, key=sum)", "test_imports": ["import math"],
         "test_list": ["assert sort_matrix([[1, 2], [0]]) == [[0], [1, 2]]", "assert math.floor(1.5) == 1"]}])
    (p,) = load_problems(DatasetConfig(source="mbpp", path=str(f)))
    assert p.tests.startswith("import math\nassert sort_matrix") and p.meta["entry_point"] == "sort_matrix"
    run_tests(p.meta["solution"], p.tests)


def test_function_name():
    assert function_name("assert math.isclose(area_tetrahedron(3), 15.58, rel_tol=0.001)") == "area_tetrahedron"
    assert function_name("assert set(similar_elements((3, 4), (5, 4))) == set((4,))") == "similar_elements"
    assert function_name("assert f(g(1)) == 2", "def g(x):\n    pass\ndef f(x):\n    pass") == "f"


def test_humaneval_fixture():
    ps = load("humaneval")
    p = ps[0]
    assert p.id == "HumanEval/0" and p.task == "code" and p.meta["entry_point"] == "has_close_elements"
    assert p.prompt.startswith("Complete the following Python function:\n```python\nfrom typing import List")
    assert p.prompt.endswith('"""\n```') and p.tests.rstrip().endswith("check(has_close_elements)")
    assert p.meta["imports"] == "from typing import List" and ps[1].meta["imports"] == ""
    for q in ps:
        run_tests(q.meta["stub"] + q.meta["solution"], q.tests)
    with pytest.raises(AssertionError):
        run_tests("def add(x, y):\n    return x - y", ps[2].tests)


def test_generic_file_formats_and_field_mapping(tmp_path):
    import datasets

    rows = [{"q": f"what is {i}+{i}?", "gold": str(2 * i), "kind": "math", "difficulty": i} for i in range(4)]
    jl = write_jsonl(tmp_path / "mine.jsonl", rows)
    fields = {"prompt": "q", "answer": "gold", "task": "kind"}
    ps = load_problems(DatasetConfig(source="jsonl", path=str(jl), fields=fields))
    assert [p.answer for p in ps] == ["0", "2", "4", "6"] and ps[1].id == "mine-train-1"
    assert ps[2].meta == {"difficulty": 2} and ps[0].task == "math"
    pq = tmp_path / "mine.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(pq))
    assert [p.prompt for p in load_problems(DatasetConfig(source="parquet", path=str(pq), fields=fields))] == \
        [p.prompt for p in ps]
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                          "test": datasets.Dataset.from_list(rows[1:])}).save_to_disk(str(saved))
    ps = load_problems(DatasetConfig(source="hub", path=str(saved), split="test[1:]", fields=fields))
    assert [p.answer for p in ps] == ["4", "6"] and [p.id for p in ps] == ["saved-test-1", "saved-test-2"]


def test_hub_id_goes_through_load_dataset(monkeypatch):
    """A Hub id (openai/gsm8k, config main) is read with datasets.load_dataset; a list of configs concatenates."""
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list([{"question": f"{name} q", "answer": "work\n#### 7"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ps = load_problems(DatasetConfig(source="gsm8k", path="openai/gsm8k", split="test", options={"name": "main"}))
    assert calls == [("openai/gsm8k", "main", "test", None)] and ps[0].id == "gsm8k-test-0" and ps[0].answer == "7"
    calls.clear()
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None, revision=None: (
        calls.append(name) or datasets.Dataset.from_list([{"problem": f"{name}?", "solution": "\\boxed{1}",
                                                            "level": "Level 2", "type": name}])))
    ps = load_problems(DatasetConfig(source="math", path="EleutherAI/hendrycks_math",
                                     options={"name": ["algebra", "geometry"], "revision": "main"}))
    assert calls == ["algebra", "geometry"] and [p.meta["subject"] for p in ps] == ["algebra", "geometry"]


def test_mixed_source_and_mixed_file(tmp_path):
    cfg = load_config(None, [
        "data.train={source: mixed, parts: ["
        f"{{source: gsm8k, path: '{FIX / 'gsm8k.jsonl'}', limit: 2}}, {{source: mbpp, path: '{FIX / 'mbpp.jsonl'}'}}]}}"
    ])
    ps = load_problems(cfg.data.train)
    assert [p.task for p in ps] == ["math"] * 2 + ["code"] * 6
    f = write_jsonl(tmp_path / "mix.jsonl", [
        {"id": "m1", "task": "math", "prompt": "1+1?", "answer": "2"},
        {"id": "c1", "task": "code", "prompt": "Write f.", "tests": "assert f() == 1"}])
    ps = load_problems(DatasetConfig(source="jsonl", path=str(f)))
    assert [(p.task, p.answer, p.tests) for p in ps] == [("math", "2", None), ("code", None, "assert f() == 1")]
    with pytest.raises(ConfigError, match="needs parts"):
        load_problems(DatasetConfig(source="mixed"))


@pytest.mark.parametrize("source, row, missing", [
    ("gsm8k", {"question": "q?"}, "'answer'"),
    ("gsm8k", {"problem": "q?", "answer": "#### 1"}, "'question'"),
    ("math", {"problem": "p", "level": "Level 1"}, "'solution'"),
    ("math500", {"problem": "p", "solution": "\\boxed{1}"}, "'answer'"),
    ("mbpp", {"task_id": 1, "text": "t", "code": "c"}, "'test_list'"),
    ("mbpp", {"task_id": 1, "code": "c", "test_list": ["assert f()"]}, "'text' or 'prompt'"),
    ("humaneval", {"task_id": "H/0", "prompt": "def f():", "test": "def check(c): pass"}, "'entry_point'"),
    ("jsonl", {"question": "q", "answer": "1", "task": "math"}, "'prompt'"),
])
def test_bad_schema_names_the_missing_field(tmp_path, source, row, missing):
    f = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(InputError, match=f"missing field {missing}") as exc:
        load_problems(DatasetConfig(source=source, path=str(f)))
    assert "fields present" in str(exc.value) and "row 0" in str(exc.value)


def test_bad_dataset_configs(tmp_path):
    with pytest.raises(ConfigError, match=r"options\.bogus"):
        load("gsm8k", options={"bogus": 1})
    with pytest.raises(ConfigError, match="no such file"):
        load_problems(DatasetConfig(source="gsm8k", path="./missing/gsm8k.jsonl"))
    with pytest.raises(ConfigError, match="needs a path"):
        load_problems(DatasetConfig(source="mbpp"))
    with pytest.raises(ConfigError, match="split"):
        load("gsm8k", split="train[:x]")
    f = write_jsonl(tmp_path / "nogold.jsonl", [{"problem": "p", "solution": "no box"}])
    with pytest.raises(InputError, match="boxed"):
        load_problems(DatasetConfig(source="math", path=str(f)))


# ---------------------------------------------------------------------------------------------- prompts


def test_render_prompt_chat_template_system_fewshot_and_format(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    cfg = PromptConfig(system="Be brief.", fewshot=[{"prompt": "1+1?", "completion": "\\boxed{2}"}])
    fmt = "Put the final answer in \\boxed{}."
    out = render_prompt(tok, "2+2?", cfg, fmt)
    assert out == tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"1+1? {fmt}"},
         {"role": "assistant", "content": "\\boxed{2}"}, {"role": "user", "content": f"2+2? {fmt}"}],
        tokenize=False, add_generation_prompt=True)
    assert out.startswith("Be brief.\nQ: 1+1? Put") and out.endswith("Q: 2+2? Put the final answer in \\boxed{}.\nA: ")
    assert render_prompt(tok, "2+2?", PromptConfig(answer_format=False), "Put it in a box.") == "Q: 2+2?\nA: "
    # after a multi-line statement (a code block, a test) the instruction goes on its own line
    assert render_prompt(tok, "Do f.\nassert f() == 1\n", PromptConfig(), "Fmt.") == "Q: Do f.\nassert f() == 1\nFmt.\nA: "
    plain = render_prompt(tok, "2+2?", PromptConfig(chat_template=False, system="S"), "Fmt.")
    assert plain == "S\n\n2+2? Fmt.\n"
    with pytest.raises(ConfigError, match=r"prompt\.fewshot\[0\]"):
        render_prompt(tok, "x", PromptConfig(fewshot=[{"question": "1"}]))


def test_render_prompt_template_without_system_role(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}")
    assert render_prompt(tok, "hi", PromptConfig(system="S")) == "<user>S\n\nhi<a>"


def test_problem_prompts_use_each_tasks_answer_format(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ps = load("gsm8k", limit=1)
    (out,) = problem_prompts(tok, ps, PromptConfig())
    assert out == f"Q: {ps[0].prompt} {get_verifier('math').answer_format}\nA: "


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name, model, train, evalsrc", [
    ("qwen2.5-math-1.5b-gsm8k", "Qwen/Qwen2.5-Math-1.5B-Instruct", "gsm8k", "gsm8k"),
    ("qwen2.5-math-1.5b-math", "Qwen/Qwen2.5-Math-1.5B-Instruct", "math", "math500"),
    ("qwen2.5-coder-1.5b-mbpp", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "mbpp", "mbpp"),
])
def test_real_model_configs_resolve(name, model, train, evalsrc):
    path = REPO / "configs" / f"{name}.yaml"
    assert "Hardware:" in path.read_text().split("\nname:")[0]  # expected hardware in the header comment
    cfg = load_config(path)
    assert cfg.model.path == model and cfg.data.train.source == train and cfg.data.eval.source == evalsrc
    assert cfg.sampling.backend == "vllm" and cfg.train.sft.args["bf16"] and cfg.train.launch.launcher == "accelerate"
    assert cfg.train.launch.accelerate_config == "configs/accelerate/zero2.yaml"
    assert train in adapter_names() and evalsrc in adapter_names()


# ---------------------------------------------------------------------------------------------- end to end


def _fixture_loop_overrides(tiny_overrides, tiny_model, source, name):
    """The tiny loop config, with the tiny model and data.train / data.eval on a fixture file."""
    base = [o for o in tiny_overrides if not o.startswith(("data.", "model."))]
    path = FIX / f"{name}.jsonl"
    return [*base, f"model.path={tiny_model}", "data.real=null", "select.real_fraction=0", "prompt.answer_format=true",
            "sampling.backend=transformers", "train.sft.max_length=512",
            "sampling.max_tokens=16", "select.include_unverified=true",
            f"data.train={{source: {source}, path: '{path}', split: 'train[:4]'}}",
            f"data.eval={{source: {source}, path: '{path}', split: 'train[4:]'}}"]


def _run_loop(tmp_path, overrides):
    from starloop.loop.driver import Driver

    driver = Driver(load_config(None, overrides), tmp_path / "run")
    metrics = driver.run()
    return driver, metrics


def _read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def _check_one_iteration(driver, metrics, task):
    from starloop.loop.driver import STAGES
    from starloop.loop.runtime.context import RunContext

    root = driver.rd.root
    assert [m["iteration"] for m in metrics] == [0, 1]
    stages = driver.rd.manifest()["stages"]
    assert all(f"iter-001/{s.name}" in stages for s in STAGES if s.when is None)
    assert set(stages["iter-001/verify"]["per_verifier"]) == {task}
    assert stages["iter-001/train"]["sft"]["steps"] > 0
    # One template everywhere: the SFT rows' prompt is the sampled prompt, which is what
    # problem_prompts renders for that problem, and evaluation renders eval problems the same way.
    with RunContext.open(driver.cfg, driver.rd) as ctx:  # the run's own problems and tokenizer
        by_id = {p.id: p for p in [*ctx.train_problems, *ctx.eval_problems]}
        tokenizer = ctx.tokenizer
    sampled = {s["problem_id"]: s["prompt"] for s in _read(root / "iter-001/sample/samples.jsonl")}
    sft = _read(root / "iter-001/select/sft.jsonl")
    assert sft
    for row in sft:
        (expected,) = problem_prompts(tokenizer, [by_id[row["problem_id"]]], driver.cfg.prompt)
        assert row["prompt"] == sampled[row["problem_id"]] == expected
        assert get_verifier(task).answer_format in row["prompt"]
    for s in _read(root / "iter-001/evaluate/greedy.jsonl"):
        assert s["prompt"] == problem_prompts(tokenizer, [by_id[s["problem_id"]]], driver.cfg.prompt)[0]
    return ctx


def test_gsm8k_file_one_loop_iteration(tmp_path, tiny_overrides, tiny_model):
    driver, metrics = _run_loop(tmp_path, _fixture_loop_overrides(tiny_overrides, tiny_model, "gsm8k", "gsm8k"))
    ctx = _check_one_iteration(driver, metrics, "math")
    assert [p.answer for p in ctx.eval_problems] == ["3", "70000"]


def test_mbpp_file_one_loop_iteration(tmp_path, tiny_overrides, tiny_model):
    driver, metrics = _run_loop(tmp_path, _fixture_loop_overrides(tiny_overrides, tiny_model, "mbpp", "mbpp"))
    _check_one_iteration(driver, metrics, "code")


def test_conversational_prompts_one_loop_iteration(tmp_path, tiny_overrides, tiny_model):
    """Problems in TRL's conversational prompt form ({system,} user messages) go through the loop."""
    rows = [{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"What is {a}+{b}?"}],
             "answer": str(a + b), "task": "math"} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (4, 4), (6, 3)]]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    ps = load_problems(DatasetConfig(source="jsonl", path=str(path)))
    assert ps[0].prompt == "What is 1+2?" and ps[0].meta["system"] == "Be brief." and ps[0].answer == "3"
    overrides = [o.replace(str(FIX / "gsm8k.jsonl"), str(path)).replace("source: gsm8k", "source: jsonl")
                 for o in _fixture_loop_overrides(tiny_overrides, tiny_model, "gsm8k", "gsm8k")]
    driver, metrics = _run_loop(tmp_path, overrides)
    _check_one_iteration(driver, metrics, "math")
    bad = [{"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                       {"role": "user", "content": "c"}], "answer": "1", "task": "math"}]
    with pytest.raises(InputError, match="row 0: a conversational prompt must be an optional system message"):
        load_problems(DatasetConfig(source="jsonl", path=str(write_jsonl(tmp_path / "multi.jsonl", bad))))
