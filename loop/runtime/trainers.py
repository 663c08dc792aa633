"""Training: a thin layer over TRL's ``SFTTrainer`` and ``DPOTrainer``; trainers are called,
never subclassed. Checkpoints are saved in Hugging Face format that both samplers load (a LoRA
adapter is merged into its base first, and also kept unmerged in the checkpoint's ``adapter/``,
with the tokenizer, for a server to load by name). Training that starts from an adapter folder
trains that adapter further on its base model (the base named in its config); DPO's reference is
then the base model (the adapter switched off).

The trainers' arguments are ``train.sft`` / ``train.dpo`` as written, in TRL's own names, plus
what starloop must set (see ``config.training.SFTSection``). SFT rows: ``prompt`` / ``completion``
strings (loss on the completion only), or ``messages`` (the last message, an assistant turn, is
the completion). DPO rows: TRL's preference format (``prompt``, ``chosen``, ``rejected``
strings); the reference model is the starting model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starloop.loop.config import TrainConfig, config_file
from starloop.loop.runtime.artifacts import ADAPTER
from starloop.loop.runtime.failpoints import failpoint
from starloop.loop.runtime.models import LoadOptions
from starloop.loop.runtime.samplers import cuda_available

log = logging.getLogger(__name__)


def trainer_config(kind: str, tcfg: TrainConfig, out_dir: Path, report_to: Sequence[str] = ()):
    """TRL's ``SFTConfig`` / ``DPOConfig`` for ``kind``: the section's fields, then what starloop sets."""
    section = tcfg.sft if kind == "sft" else tcfg.dpo
    args: dict[str, Any] = {"save_strategy": "no", "report_to": list(report_to) or "none", **section.args}
    args["output_dir"] = str(out_dir / "trainer")
    if tcfg.launch.deepspeed:
        args["deepspeed"] = str(config_file(tcfg.launch.deepspeed, key="train.launch.deepspeed"))
    if kind == "sft":
        args["completion_only_loss"] = True
    if not cuda_available():
        if args.get("bf16"):
            log.warning("train.%s.bf16 is true, but there is no CUDA device: training in float32", kind)
        args.update(bf16=False, use_cpu=True)
    return section.target()(**args)


def _peft_config(tcfg: TrainConfig):
    if not tcfg.lora.enabled:
        return None
    from peft import LoraConfig  # heavy, optional: deferred

    return LoraConfig(task_type="CAUSAL_LM", **tcfg.lora.args)


def _save(trainer, tokenizer, out: Path, lora: bool) -> None:
    """Save the trained model (LoRA merged into the base, the adapter itself in ``out/adapter``) and tokenizer
    to ``out``."""
    from transformers.integrations import is_deepspeed_zero3_enabled  # heavy: deferred

    model = trainer.model
    if lora:
        if trainer.accelerator.is_main_process:
            trainer.accelerator.unwrap_model(model).save_pretrained(out / ADAPTER, safe_serialization=True)
            tokenizer.save_pretrained(out / ADAPTER)
        model = model.merge_and_unload()
    state = None
    if not lora and is_deepspeed_zero3_enabled():
        # Under ZeRO-3 each rank holds a slice of every parameter: all ranks gather, rank 0 writes.
        state = trainer.accelerator.get_state_dict(trainer.deepspeed)
    if trainer.accelerator.is_main_process:
        unwrapped = trainer.accelerator.unwrap_model(model)
        unwrapped.save_pretrained(out, state_dict=state, safe_serialization=True)
        failpoint("checkpoint-save")  # weights written, tokenizer not yet: a checkpoint half saved
        tokenizer.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()


def sft_example(row: dict[str, Any]) -> dict[str, Any]:
    """The TRL prompt-completion example of an SFT row (string or conversational)."""
    if "messages" in row and "prompt" not in row:
        msgs = list(row["messages"])
        if len(msgs) < 2 or msgs[-1].get("role") != "assistant":
            raise ValueError("an SFT 'messages' row must end with an assistant message after at least one other")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    return {"prompt": row["prompt"], "completion": row["completion"]}


def _tokenizer(model_path: str, load: LoadOptions):
    from transformers import AutoTokenizer  # heavy: deferred

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=load.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _drop_overlong(examples: list[dict[str, Any]], tokenizer, max_length: int | None) -> list[dict[str, Any]]:
    """Drop examples whose prompt alone fills ``max_length``: truncation would leave no completion
    token to learn from. Raises if nothing is left, naming the setting to change."""
    if max_length is None:
        return examples
    kept = [e for e in examples
            if not isinstance(e["prompt"], str) or len(tokenizer(e["prompt"], add_special_tokens=False).input_ids)
            < max_length]
    dropped = len(examples) - len(kept)
    if dropped:
        log.warning("SFT: dropped %d of %d rows whose prompt is longer than train.sft.max_length=%d",
                    dropped, len(examples), max_length)
    if not kept:
        raise ValueError(f"every one of the {len(examples)} SFT rows has a prompt of at least train.sft.max_length="
                         f"{max_length} tokens; raise train.sft.max_length")
    return kept


def _fit(trainer_cls, model_path: str, args, ds, tokenizer, tcfg: TrainConfig, out_dir: Path, *, rows: int,
         t0: float, load: LoadOptions, callbacks: Sequence[Any] = ()):
    """Load the model, train it with ``trainer_cls`` (a TRL trainer), save it to ``out_dir/model``;
    return the trainer and the stats every kind of training reports."""
    from transformers import AutoModelForCausalLM  # heavy: deferred

    adapter = (Path(model_path) / "adapter_config.json").is_file()
    if adapter:  # a LoRA adapter: trained further on its own base model
        from peft import AutoPeftModelForCausalLM  # heavy, optional: deferred

        model = AutoPeftModelForCausalLM.from_pretrained(model_path, is_trainable=True, dtype=load.torch_dtype("auto"),
                                                         trust_remote_code=load.trust_remote_code)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=load.torch_dtype("auto"),
                                                     trust_remote_code=load.trust_remote_code)
    trainer = trainer_cls(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                          peft_config=None if adapter else _peft_config(tcfg), callbacks=list(callbacks) or None)
    result = trainer.train()
    _save(trainer, tokenizer, out_dir / "model", tcfg.lora.enabled or adapter)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer, {
        "rows": rows,
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "train_seconds": result.metrics.get("train_runtime"),
        "seconds": time.time() - t0,
    }


def train_sft(model_path: str, rows: list[dict[str, Any]], tcfg: TrainConfig, out_dir: str | Path,
              report_to: Sequence[str] = (), load: LoadOptions | None = None,
              callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Supervised fine-tuning on prompt/completion ``rows`` (loss on the completion only); ``callbacks`` are
    transformers ``TrainerCallback``s (e.g. an early stop).

    Saves the model to ``out_dir/model`` and returns training stats.
    """
    import datasets  # heavy: deferred
    from trl import SFTTrainer  # heavy: deferred

    out_dir = Path(out_dir)
    t0 = time.time()
    args = trainer_config("sft", tcfg, out_dir, report_to)
    load = load or LoadOptions()
    tokenizer = _tokenizer(model_path, load)
    examples = _drop_overlong([sft_example(r) for r in rows], tokenizer, args.max_length)
    trainer, stats = _fit(SFTTrainer, model_path, args, datasets.Dataset.from_list(examples), tokenizer, tcfg,
                          out_dir, rows=len(rows), t0=t0, load=load, callbacks=callbacks)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * (trainer.state.epoch or 0.0)
    return {**stats, "tokens": int(tokens)}


def train_dpo(model_path: str, rows: list[dict[str, Any]], tcfg: TrainConfig, out_dir: str | Path,
              report_to: Sequence[str] = (), load: LoadOptions | None = None) -> dict[str, Any]:
    """DPO on preference ``rows`` (prompt / chosen / rejected), starting from and referenced to ``model_path``.

    ``train.dpo.loss_type`` lists TRL loss types combined with ``train.dpo.loss_weights``:
    ``[sigmoid, sft]`` is DPO + NLL on the chosen completion (Iterative RPO). Saves the model to
    ``out_dir/model`` and returns training stats (losses, reward accuracy and margin, tokens).
    """
    import datasets  # heavy: deferred
    from trl import DPOTrainer  # heavy: deferred

    out_dir = Path(out_dir)
    t0 = time.time()
    args = trainer_config("dpo", tcfg, out_dir, report_to)
    load = load or LoadOptions()
    tokenizer = _tokenizer(model_path, load)
    ds = datasets.Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                                     for r in rows])
    trainer, stats = _fit(DPOTrainer, model_path, args, ds, tokenizer, tcfg, out_dir, rows=len(rows), t0=t0, load=load)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tds = trainer.train_dataset
    per_epoch = sum(len(p) * 2 + len(c) + len(r) for p, c, r in
                    zip(tds["prompt_ids"], tds["chosen_ids"], tds["rejected_ids"], strict=True))
    return {
        **stats,
        "reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "reward_margin": logs[-1].get("rewards/margins") if logs else None,
        "beta": args.beta,
        "loss_type": list(args.loss_type) if isinstance(args.loss_type, list | tuple) else [args.loss_type],
        "tokens": int(per_epoch * (trainer.state.epoch or 0.0)),
    }
