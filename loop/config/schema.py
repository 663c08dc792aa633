"""The experiment config's sections: one dataclass each, with what every key means.

Two kinds of section. Most are starloop's own: every key is a field below. ``train.sft``,
``train.dpo`` and ``train.lora`` are *open* sections (:class:`OpenSection`): besides
``enabled`` they take any field of TRL's ``SFTConfig`` / ``DPOConfig`` or PEFT's ``LoraConfig``
by that library's own name (``learning_rate``, ``per_device_train_batch_size``, ``loss_type``,
``lora_alpha`` ...), checked against that dataclass before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from starloop.loop.config.training import (  # the train section's parts: re-exported
    OpenSection,
    TrainConfig,
)


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
    """Field mapping for the generic adapter: {id, prompt, answer, tests, task, completion} -> column name."""
    options: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific options (arithmetic: levels, counts; Hub datasets: ``name`` (config, or a list of
    configs to concatenate) and ``revision``; see each adapter in loop/tasks/)."""
    unlabeled: bool = False
    """The rows have no gold answers (train only; needs ``label.enabled``): answers, tests and worked solutions
    are not read, and the label stage labels each problem (math: a majority-vote answer; code: tests kept by
    execution agreement)."""
    parts: list[DatasetConfig] = field(default_factory=list)
    """For ``source: mixed``: the datasets whose problems are pooled (e.g. math and code problems in one
    loop; each problem's task picks its verifier)."""


@dataclass
class DataConfig:
    train: DatasetConfig = field(default_factory=DatasetConfig)
    eval: DatasetConfig = field(default_factory=lambda: DatasetConfig(options={"split": "eval"}))
    real: DatasetConfig | None = None
    """Optional real (human / gold) SFT data mixed into every iteration's SFT set: a generic file with
    ``prompt`` / ``completion`` columns (``fields`` maps other names), or any task adapter whose
    problems carry a worked solution (``meta.solution``: arithmetic, gsm8k, math, mbpp)."""


@dataclass
class ModelConfig:
    path: str = "builtin:arithmetic"
    """A Hugging Face model directory or Hub id; ``builtin:NAME`` builds a registered built-in model
    (``builtin:arithmetic``: the demo's seed model)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype for sampling and training. auto: the checkpoint's own dtype for training; for
    sampling bfloat16 on a GPU, and on CPU float32 for a float32 checkpoint, else bfloat16 (vLLM) /
    float32 (transformers)."""
    trust_remote_code: bool = False
    """Let transformers / vLLM run a model repository's own Python code (its tokenizer and model classes)."""
    builtin_options: dict[str, Any] = field(default_factory=dict)
    """Options of a built-in model (``builtin:arithmetic``: see loop/demo/seed_model.py)."""


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
class AdaptiveConfig:
    """Adaptive sampling: draw in rounds, verify each round inside the sample stage, and stop drawing
    for a problem once it has ``select.max_per_problem`` verified samples; the budget this saves
    goes to problems still unsolved, up to ``max_per_problem`` samples each."""

    enabled: bool = False
    round_n: int = 2
    """Samples per active problem per round."""
    max_per_problem: int | None = None
    """Most samples one problem may get in an iteration (default 2 x sampling.n)."""
    budget: float = 1.0
    """Total samples per iteration, as a multiple of the fixed budget (problems x sampling.n)."""


@dataclass
class ServerConfig:
    """How starloop talks to an OpenAI-compatible server (``backend: openai``: the student's or the teacher's)."""

    endpoint: Literal["completions", "chat"] = "completions"
    """completions: sent the prompt text starloop renders (the student's chat template); chat: sent the chat
    turns (system prompt, few-shot turns, the problem) for the server to apply its own model's template: for a
    teacher of another model family, or a server without a completions endpoint."""
    concurrency: int = 8
    """Requests in flight at once."""
    timeout: float = 600.0
    """Seconds one request may take before it counts as failed (and is retried)."""
    max_retries: int = 5
    """Retries of a request after a transient error (connection, timeout, 408, 409, 429, 5xx), with exponential
    backoff (the ``openai`` client's own)."""
    request_seed: bool = True
    """Send each request a seed (from the call's seed and the prompt) for servers that honour one; false for
    servers that refuse it (or crash on it, as vLLM's CPU engine can)."""


@dataclass
class TeacherConfig:
    """A teacher that samples and rationalizes instead of the student (distillation) in iterations
    1..``iterations``; the student (``model.path``) is still the model trained and evaluated. Off while
    ``model`` is null. Unset keys are the student's (``sampling.backend``, ``sampling.base_url`` ...)."""

    model: str | None = None
    """backend vllm / transformers: a model folder, Hub id or ``builtin:NAME``; backend openai: the name the
    server serves the teacher under."""
    backend: Literal["vllm", "transformers", "openai"] | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    iterations: int | None = None
    """The teacher samples in iterations 1..iterations, the student's checkpoint after that; null = every iteration."""
    builtin_options: dict[str, Any] = field(default_factory=dict)
    """Options of a built-in teacher (``model: builtin:NAME``), as ``model.builtin_options``."""


@dataclass
class SamplingConfig:
    backend: Literal["vllm", "transformers", "openai"] = "vllm"
    """vllm / transformers: an engine in starloop's processes; openai: any OpenAI-compatible server at
    ``base_url`` (vLLM, SGLang, TGI, a hosted API), which serves a fixed model: the student only when training
    uses LoRA (each iteration's adapter is loaded into the server by name), else a teacher or an evaluation."""
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
    max_num_seqs: int | None = None
    """backend vllm: the most sequences the engine decodes in one step (vLLM's ``max_num_seqs``; None: vLLM's
    default). A tiny model on CPU samples faster with more: steps cost mostly fixed overhead."""
    base_url: str | None = None
    """backend openai: the server's URL, e.g. ``http://127.0.0.1:8000/v1``."""
    api_key_env: str = "OPENAI_API_KEY"
    """backend openai: the environment variable holding the server's API key (the key is never written to the
    run dir; unset: no key, as a local vLLM server without ``--api-key`` takes)."""
    served_model: str | None = None
    """backend openai: the name the server serves ``model.path`` under (default: the model's folder, the name
    vLLM gives it)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    """Sample in rounds and move the budget to unsolved problems (off by default)."""


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
class LabelConfig:
    """The label stage (stages/label.py): majority-vote pseudo-labels for train problems without answers."""

    enabled: bool = False
    vote: Literal["majority", "own"] = "majority"
    """``own``: no agreement filter, the ablation of the vote: each sample's own final answer is its label, so
    every sample that marks a final answer counts as verified (answer problems only)."""
    min_agreement: float = 0.5
    """Share of a problem's ``sampling.n`` samples whose (equivalent) answers must agree for a pseudo-label
    (code: that pass the winning consensus set's tests); below it, or on a tie, the problem is skipped that
    iteration."""
    tests_n: int = 4
    """Code problems without tests: completions of ``tests_prompt`` sampled per problem, whose ``assert``
    lines are the candidate tests of the execution agreement (CodeT)."""
    tests_prompt: str = ("{prompt}\n\nWrite Python assert statements, one per line, that a correct solution "
                         "passes. Write only the asserts.")
    max_tests: int = 16
    """Candidate tests per problem at most (the first distinct ones)."""
    rewrite: Literal["none", "arithmetic"] = "none"
    """Sample each unlabeled problem under ``forms`` equivalent statements that vote together: ``arithmetic``
    reorders a +/- chain's terms (see ``starloop.loop.tasks.arithmetic.reorderings``). A model's confident
    error usually belongs to one statement: with another order of the same terms the same slip gives another
    answer, so a wrong answer rarely gathers ``min_agreement`` across forms. ``none``: the statement as given."""
    forms: int = 4
    """With ``rewrite``: statements per problem (the original first, then distinct rewrites while there are
    any); ``sampling.n`` is split evenly among them."""


@dataclass
class SynthesizeConfig:
    """The synthesize stage (stages/synthesize.py, filters in runtime/synthesis.py): Self-Instruct proposals of
    new problems, filtered, joining the pool for later iterations (they come without answers: needs
    ``label.enabled``)."""

    enabled: bool = False
    kind: Literal["text", "arithmetic"] = "text"
    """How a problem is read from a proposal: ``text`` (its first paragraph) or ``arithmetic`` (a chain)."""
    task: str | None = None
    """The verifier of the new problems (default: the first train problem's)."""
    proposals: int = 64
    """Proposal prompts per iteration (one completion each)."""
    k: int = 3
    """Pool problems shown in each proposal prompt."""
    template: str = "{examples}Problem: "
    example: str = "Problem: {prompt}\n\n"
    """How each shown problem is written into ``template``'s ``{examples}``."""
    temperature: float = 1.0
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    min_tokens: int = 3
    max_tokens: int = 256
    """Length bounds of a new problem, in tokens (words, and every digit and symbol)."""
    novelty_threshold: float = 0.7
    """A proposal whose ROUGE-L F1 against any pool problem reaches this is a near duplicate."""
    decontam_n: int = 13
    """A proposal sharing an n-gram of this many tokens with a held-out problem is contaminated (shorter
    problems are compared whole): 13 words for prose, fewer for short problems."""
    judge: dict[str, Any] = field(default_factory=dict)
    """Options of the ``judge`` verifier (as ``verify.options.judge``: base_url, model, rubric, threshold...);
    set, an LLM judge grades each proposal that passed the other filters as a response to its proposal prompt,
    and only the ones it passes go on. Empty: no judge."""
    n_solutions: int = 8
    """Samples per new problem for its majority-vote label and estimated pass rate."""
    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    """The difficulty band: a new problem's estimated pass rate must lie strictly between the two."""


@dataclass
class CurriculumConfig:
    """A curriculum over the pool (runtime/curriculum.py): levels join as the model masters the current one."""

    enabled: bool = False
    key: str = "level"
    """The problem ``meta`` key that orders the pool (arithmetic: ``level``, the number of operands)."""
    threshold: float = 0.6
    """Share of an iteration's sampled problems of the current level solved (verified) for the next to join."""
    keep_previous: bool = True
    """Earlier levels stay in the pool (false: only the current level is sampled)."""


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
class PairsConfig:
    """How the pairs stage turns verified samples into DPO preference pairs (see stages/pairs.py)."""

    strategy: Literal["random", "hardest", "length_matched"] = "random"
    """random; hardest (highest verifier score of the rejected, then most similar to the chosen);
    length_matched (smallest length difference)."""
    per_prompt: int = 2
    exclude_truncated: bool = True
    """Never use a truncated completion as the rejected one (a truncated completion is not a wrong one)."""
    rationales_as_chosen: bool = False
    """For a problem none of whose own samples was verified, use the rationalize stage's verified
    rationales (stored under the hint-free prompt) as the chosen side against its failed samples:
    the problems the model cannot yet solve then give pairs too."""
    cut_rejected: Literal["none", "step", "word"] = "none"
    """Cut the rejected completion right after the point where it first departs from the chosen one:
    ``step``, at the end of that line (a reasoning step); ``word``, at the end of that word (or
    symbol); ``none`` keeps it whole. After its first slip a failed chain often computes correctly
    from the wrong value; DPO on the whole text pushes that correct work down as well (step-level
    preferences, as in Step-DPO). The text the two completions share cancels in the DPO loss either
    way; the chosen completion is kept whole."""


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
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers (tensorboard, wandb, or all) for each iteration's metrics and stage stats, one
    tracker run per starloop run with the iteration as its step."""
    executor: Literal["local", "ray"] = "local"
    """Where sampler replicas (``sampling.data_parallel_size``) and isolated sampling phases run: local = child
    processes on this machine; ray = tasks on the Ray cluster at ``ray_address``, spread over its nodes, each
    with ``sampling.tensor_parallel_size`` GPUs (the run directory must be on a filesystem all nodes see)."""
    ray_address: str | None = None
    """The Ray cluster's head, ``HOST:PORT`` as ``ray start --head --port`` was given; null = ``$RAY_ADDRESS``,
    else ``auto`` (the cluster ``ray start`` started on this machine)."""


@dataclass
class HubConfig:
    """Publishing the run's checkpoints to the Hugging Face Hub, each with a model card stating the run's
    config, data provenance and held-out metrics (off while ``repo_id`` is null)."""

    repo_id: str | None = None
    """The model repository, e.g. ``user/starloop-qwen-math``; created if missing."""
    push: Literal["final", "each"] = "final"
    """final: the last iteration's checkpoint once the run is complete; each: every iteration's checkpoint
    once it is evaluated (one commit per iteration in the repository's history)."""
    private: bool = True
    token_env: str = "HF_TOKEN"
    """The environment variable holding the Hub token (the token is never written to the run dir)."""


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
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    synthesize: SynthesizeConfig = field(default_factory=SynthesizeConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    rationalize: RationalizeConfig = field(default_factory=RationalizeConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


def to_plain(obj: Any) -> Any:
    """A config as plain data, open sections flat (``{enabled, **args}``), as YAML shows it."""
    if isinstance(obj, OpenSection):
        return {"enabled": obj.enabled, **to_plain(obj.args)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
