"""The loop: stages of one iteration, run in order, each recorded in the run's manifest.

    iteration 0: evaluate the starting model
    iteration i: sample -> verify -> rationalize -> select -> train -> evaluate

Every stage is a function of typed inputs that writes its outputs into a fresh directory,
renamed into ``iter-NNN/<stage>`` when complete and then recorded (see ``rundir``). A rerun
skips recorded stages, so a killed run resumes at the first unfinished stage.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starloop.loop.config import ConfigError, DatasetConfig, RunConfig
from starloop.loop.evaluate import evaluate_model
from starloop.loop.io import read_jsonl, write_jsonl
from starloop.loop.rationalize import failed_problems, hinted_text, keep_rationales
from starloop.loop.rundir import RunDir
from starloop.loop.sample import GenParams, get_sampler, release_sampler
from starloop.loop.select import mix, select_traces
from starloop.loop.types import Sample
from starloop.loop.verify import verify_samples
from starloop.verifiers.registry import get_verifier
from starloop.verifiers.types import Problem

log = logging.getLogger("starloop")

STAGES = ("sample", "verify", "rationalize", "select", "train", "evaluate")


def cache_dir() -> Path:
    return Path(os.environ.get("STARLOOP_CACHE", "~/.cache/starloop")).expanduser()


def resolve_model(cfg: RunConfig) -> str:
    """The starting model's path; builds the demo's seed model for ``builtin:arithmetic``."""
    path = cfg.model.path
    if path.startswith("builtin:"):
        name = path.split(":", 1)[1]
        if name != "arithmetic":
            raise ConfigError(f"model.path: unknown built-in model {path!r}; known: builtin:arithmetic")
        from starloop.loop.demo import build_seed_model

        return str(build_seed_model(cfg.model.builtin_options, cfg.prompt, cache_dir(), cfg.seed))
    return path


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, trust_remote_code=False)


def real_rows(ds: DatasetConfig, seed: int) -> list[dict[str, Any]]:
    """Gold SFT rows {problem_text, completion} for data.real."""
    if ds.source == "arithmetic":
        from starloop.loop.demo import real_rows_arithmetic

        return real_rows_arithmetic(ds, seed)
    from starloop.loop.tasks.generic import load_rows

    fields = {"prompt": "prompt", "completion": "completion", **ds.fields}
    rows = load_rows(ds)
    out = []
    for i, r in enumerate(rows):
        for f in ("prompt", "completion"):
            if fields[f] not in r:
                raise ValueError(f"data.real ({ds.path}) row {i}: missing field {fields[f]!r}")
        out.append({"problem_text": r[fields["prompt"]], "completion": r[fields["completion"]], "problem_id": f"real-{i}"})
    return out


def _in_child(fn: Callable, *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh spawned process (accelerator memory is freed when it exits)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


class Loop:
    """One run: a config, a run directory, and the stages between them."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None):
        self.cfg = cfg
        self.rd = RunDir(run_dir or Path(cfg.runs_dir) / cfg.name)
        self.progress = cfg.runtime.progress
        mode = cfg.runtime.stage_processes
        if mode == "auto":
            from starloop.loop.sample import _cuda_available

            mode = "yes" if _cuda_available() else "no"
        self.isolate = mode == "yes"

    # ------------------------------------------------------------------ helpers
    def _call(self, fn: Callable, *args: Any) -> Any:
        if self.isolate:
            release_sampler()
            return _in_child(fn, *args)
        return fn(*args)

    def model_for(self, iteration: int) -> str:
        """The checkpoint that iteration ``iteration`` ends with (0 = the starting model)."""
        if iteration == 0:
            return self.base_model
        return str(self.rd.path(RunDir.key(iteration, "train")) / "model")

    def prompts_for(self, problems: list[Problem], hint: bool = False) -> list[str]:
        from starloop.loop.prompts import render_prompt

        out = []
        for p in problems:
            text = hinted_text(p, self.cfg.rationalize) if hint else p.prompt
            fmt = get_verifier(p.task).answer_format
            out.append(render_prompt(self.tokenizer, text, self.cfg.prompt, fmt))
        return out

    def _stage(self, iteration: int, stage: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        key = RunDir.key(iteration, stage)
        if self.rd.is_done(key):
            log.info("%s: done already, skipping", key)
            return self.rd.stage_info(key) or {}
        log.info("%s: running", key)
        t0 = time.time()
        with self.rd.stage(key) as out:
            info = fn(out) or {}
        info["seconds"] = round(time.time() - t0, 2)
        self.rd.record(key, info)
        log.info("%s: finished in %.1fs", key, info["seconds"])
        return info

    def _load_samples(self, iteration: int, stage: str, name: str) -> list[Sample]:
        path = self.rd.path(RunDir.key(iteration, stage)) / name
        return [Sample.from_dict(r) for r in read_jsonl(path)]

    # ------------------------------------------------------------------ stages
    def _sample(self, model: str, problems: list[Problem], prompts: list[str], params: GenParams,
                iteration: int, hinted: bool, seed: int) -> list[Sample]:
        if self.cfg.sampling.data_parallel_size > 1:
            # One replica process per shard of the problems; finished shards survive a failure.
            from starloop.loop.shard import sample_sharded

            release_sampler()
            return sample_sharded(model, self.cfg, problems, prompts, params, iteration, hinted, seed,
                                  root=self.rd.root / "shards")
        if self.isolate:
            return _in_child(sample_problems, model, self.cfg, problems, prompts, params, iteration, hinted, seed)
        return sample_problems(model, self.cfg, problems, prompts, params, iteration, hinted, seed)

    def stage_sample(self, it: int, out: Path) -> dict[str, Any]:
        pool = self.train_problems
        k = self.cfg.sampling.problems_per_iteration
        if k is not None and k < len(pool):
            pool = random.Random(f"{self.cfg.seed}-{it}").sample(pool, k)
        s = self.cfg.sampling
        params = GenParams(s.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop))
        samples = self._sample(self.model_for(it - 1), pool, self.prompts_for(pool), params, it, False,
                               self.cfg.seed + it)
        write_jsonl(out / "samples.jsonl", (x.to_dict() for x in samples))
        return {
            "problems": len(pool),
            "samples": len(samples),
            "truncated": sum(x.finish_reason == "length" for x in samples),
            "tokens": sum(x.num_tokens for x in samples),
        }

    def stage_verify(self, it: int, out: Path) -> dict[str, Any]:
        samples = self._load_samples(it, "sample", "samples.jsonl")
        stats = verify_samples(samples, self.problems_by_id, self.cfg.verify, progress=self.progress)
        write_jsonl(out / "verified.jsonl", (x.to_dict() for x in samples))
        return {"samples": len(samples), "verified": sum(x.correct for x in samples),
                "solved_problems": len({x.problem_id for x in samples if x.correct}), "per_verifier": stats}

    def stage_rationalize(self, it: int, out: Path) -> dict[str, Any]:
        verified = self._load_samples(it, "verify", "verified.jsonl")
        sampled_ids = {x.problem_id for x in verified}
        pool = [p for p in self.train_problems if p.id in sampled_ids]
        failed = failed_problems(pool, verified)
        kept: list[Sample] = []
        stats: dict[str, Any] = {"failed_problems": len(failed)}
        if self.cfg.rationalize.enabled and failed:
            r = self.cfg.rationalize
            s = self.cfg.sampling
            params = GenParams(r.n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop))
            hinted = self._sample(self.model_for(it - 1), failed, self.prompts_for(failed, hint=True), params, it,
                                  True, self.cfg.seed + 1000 + it)
            verify_samples(hinted, self.problems_by_id, self.cfg.verify, progress=self.progress)
            plain = dict(zip([p.id for p in failed], self.prompts_for(failed), strict=True))
            kept, rstats = keep_rationales(hinted, self.problems_by_id, plain, r)
            stats.update(rstats)
            write_jsonl(out / "hinted.jsonl", (x.to_dict() for x in hinted))
        else:
            stats.update(rationalized=0, rationalized_problems=0)
        write_jsonl(out / "rationales.jsonl", (x.to_dict() for x in kept))
        log.info("rationalize: %d failed problems, %d rationales kept (%s)", len(failed), len(kept),
                 ", ".join(f"{k}={v}" for k, v in stats.items()))
        return stats

    def stage_select(self, it: int, out: Path) -> dict[str, Any]:
        verified = self._load_samples(it, "verify", "verified.jsonl")
        rationales = self._load_samples(it, "rationalize", "rationales.jsonl")
        rows, dstats = select_traces(verified, rationales, self.cfg.select, self.cfg.seed + it)
        replay: list[dict[str, Any]] = []
        if self.cfg.select.replay_fraction:
            for j in range(1, it):
                replay += read_jsonl(self.rd.path(RunDir.key(j, "select")) / "sft.jsonl")
            replay = [r for r in replay if r.get("source") not in ("real", "replay")]
        rows, mstats = mix(rows, self.real_sft_rows(), replay, self.cfg.select, self.cfg.seed + it)
        write_jsonl(out / "sft.jsonl", rows)
        from starloop.loop.diversity import distinct_n

        return {**dstats, **mstats, "distinct_2": distinct_n([r["completion"] for r in rows], 2)}

    def real_sft_rows(self) -> list[dict[str, Any]]:
        if self.cfg.data.real is None:
            return []
        from starloop.loop.prompts import render_prompt

        rows = real_rows(self.cfg.data.real, self.cfg.seed)
        return [
            {"prompt": render_prompt(self.tokenizer, r["problem_text"], self.cfg.prompt,
                                     get_verifier(self.cfg.data.real.task or "math").answer_format),
             "completion": r["completion"], "problem_id": r["problem_id"], "iteration": 0, "source": "real"}
            for r in rows
        ]

    def stage_train(self, it: int, out: Path) -> dict[str, Any]:
        """SFT on the select stage's rows into ``out/model``; with ``train.dpo``, then DPO on this
        iteration's verified pairs, starting from the SFT model (kept as ``out/sft_model``)."""
        import shutil

        from starloop.loop.pairs import build_pairs, candidates_from_samples, no_pairs_message
        from starloop.loop.phase import run_training

        t = self.cfg.train
        rows = read_jsonl(self.rd.path(RunDir.key(it, "select")) / "sft.jsonl")
        init = self.base_model if t.init == "base" else self.model_for(it - 1)
        release_sampler()
        if rows:
            info = {**run_training(self.cfg, "sft", init, out, rows=rows, isolate=self.isolate), "init": init}
        else:
            # Nothing verified: the SFT checkpoint is the starting point unchanged (recorded as such).
            log.warning("iteration %d: empty SFT set, model carried over unchanged", it)
            shutil.copytree(init, out / "model")
            info = {"rows": 0, "steps": 0, "init": init}
        if not t.dpo:
            return info
        samples = self._load_samples(it, "verify", "verified.jsonl")
        cands = candidates_from_samples(samples, {s.problem_id: self.problems_by_id[s.problem_id].task
                                                  for s in samples})
        pairs, pstats = build_pairs(cands, strategy=t.pairs_strategy, per_prompt=t.pairs_per_prompt,
                                    exclude_truncated=t.pairs_exclude_truncated, seed=self.cfg.seed + it)
        write_jsonl(out / "pairs.jsonl", pairs)
        info["pairs"] = pstats
        if not pairs:
            log.warning("iteration %d: DPO skipped, %s", it, no_pairs_message(pstats))
            info["dpo"] = {"skipped": "no pairs"}
            return info
        os.replace(out / "model", out / "sft_model")
        info["dpo"] = run_training(self.cfg, "dpo", str(out / "sft_model"), out, rows=pairs, isolate=self.isolate)
        if not t.keep_sft_model:
            shutil.rmtree(out / "sft_model")
        log.info("iteration %d: DPO on %d pairs (%d prompts), loss %s -> %s", it, len(pairs),
                 pstats["prompts_with_pairs"], info["dpo"].get("first_loss"), info["dpo"].get("last_loss"))
        return info

    def stage_evaluate(self, it: int, out: Path) -> dict[str, Any]:
        from starloop.loop.report import log_iteration

        c = self.cfg
        metrics = evaluate_model(
            self.model_for(it), self.eval_problems, prompt_cfg=c.prompt, sampling_cfg=c.sampling, eval_cfg=c.eval,
            verify_cfg=c.verify, out=out, seed=c.seed + 7919 * (it + 1), prompts=self.prompts_for(self.eval_problems),
            sample_fn=lambda m, ps, pr, params, s: self._sample(m, ps, pr, params, -1, False, s),
            progress=self.progress,
        )
        row = {"iteration": it, **metrics}
        self.rd.write_metrics_row(row)
        log_iteration(c, self.rd.root, row)
        return {"pass@1": metrics.get("pass@1"), "pass@k": metrics.get("pass@k")}

    # ------------------------------------------------------------------ driver
    def setup(self) -> None:
        from starloop.loop.tasks import load_problems

        self.rd.init(self.cfg)
        self.train_problems = load_problems(self.cfg.data.train, self.cfg.seed)
        self.eval_problems = load_problems(self.cfg.data.eval, self.cfg.seed)
        overlap = {p.prompt for p in self.train_problems} & {p.prompt for p in self.eval_problems}
        if overlap:
            raise ValueError(f"{len(overlap)} eval problems also appear in the train pool, e.g. {sorted(overlap)[:3]}")
        self.problems_by_id = {p.id: p for p in [*self.train_problems, *self.eval_problems]}
        self.base_model = resolve_model(self.cfg)
        self.tokenizer = load_tokenizer(self.base_model)
        log.info("run %s: %d train problems, %d eval problems, model %s", self.rd.root,
                 len(self.train_problems), len(self.eval_problems), self.base_model)

    def pending(self) -> list[str]:
        keys = [RunDir.key(0, "evaluate")]
        keys += [RunDir.key(i, s) for i in range(1, self.cfg.iterations + 1) for s in STAGES]
        return [k for k in keys if not self.rd.is_done(k)]

    def run(self) -> list[dict[str, Any]]:
        self.rd.init(self.cfg)
        if not self.pending():
            log.info("run %s is complete (%d iterations); nothing to do", self.rd.root, self.cfg.iterations)
            return self.rd.metrics()
        # Everything the run logs also goes to run.log in the run directory.
        handler = logging.FileHandler(self.rd.root / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("starloop").addHandler(handler)
        if logging.getLogger("starloop").getEffectiveLevel() > logging.INFO:
            logging.getLogger("starloop").setLevel(logging.INFO)
        self.setup()
        try:
            self._stage(0, "evaluate", lambda out: self.stage_evaluate(0, out))
            for it in range(1, self.cfg.iterations + 1):
                for stage in STAGES:
                    self._stage(it, stage, lambda out, s=stage, i=it: getattr(self, f"stage_{s}")(i, out))
        finally:
            release_sampler()
            logging.getLogger("starloop").removeHandler(handler)
            handler.close()
        return self.rd.metrics()


def sample_problems(model: str, cfg: RunConfig, problems: list[Problem], prompts: list[str], params: GenParams,
                    iteration: int, hinted: bool, seed: int) -> list[Sample]:
    """Sample ``params.n`` completions per problem with the configured backend."""
    import dataclasses

    sampler = get_sampler(model, cfg.sampling, cfg.seed)
    gens = sampler.generate(prompts, dataclasses.replace(params, seed=seed), progress=cfg.runtime.progress)
    out = []
    for p, prompt, glist in zip(problems, prompts, gens, strict=True):
        for j, g in enumerate(glist):
            out.append(Sample(problem_id=p.id, iteration=iteration, prompt=prompt, completion=g.text,
                              finish_reason=g.finish_reason, num_tokens=g.num_tokens, index=j, hinted=hinted,
                              model=model, temperature=params.temperature, top_p=params.top_p, seed=seed))
    return out
