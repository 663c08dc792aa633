"""Training: a thin layer over TRL's ``SFTTrainer`` and ``DPOTrainer``; trainers are called,
never subclassed. Checkpoints are saved in Hugging Face format that both samplers load (a LoRA
adapter is merged into its base first).

SFT rows: ``prompt`` / ``completion`` strings (loss on the completion only), or ``messages`` (the
last message, an assistant turn, is the completion). DPO rows: TRL's preference format
(``prompt``, ``chosen``, ``rejected`` strings); the reference model is the starting model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from starloop.loop.config import TrainConfig

log = logging.getLogger(__name__)


def _common_args(cfg: TrainConfig, out_dir: Path, *, lr: float, epochs: float) -> dict[str, Any]:
    return dict(
        output_dir=str(out_dir / "trainer"),
        num_train_epochs=epochs,
        max_steps=cfg.max_steps,
        learning_rate=lr,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=cfg.bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=cfg.report_to or "none",
        deepspeed=cfg.deepspeed,
        disable_tqdm=False,
        use_cpu=not _cuda(),
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _peft_config(cfg: TrainConfig):
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def _save(trainer, tokenizer, out: Path, lora: bool) -> None:
    """Save the trained model (LoRA merged into the base) and tokenizer to ``out``."""
    model = trainer.model
    if lora:
        model = model.merge_and_unload()
    state = None
    if not lora and _zero3():
        # Under ZeRO-3 each rank holds a slice of every parameter: all ranks gather, rank 0 writes.
        state = trainer.accelerator.get_state_dict(trainer.deepspeed)
    if trainer.accelerator.is_main_process:
        unwrapped = trainer.accelerator.unwrap_model(model)
        unwrapped.save_pretrained(out, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()


def _zero3() -> bool:
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def sft_example(row: dict[str, Any]) -> dict[str, Any]:
    """The TRL prompt-completion example of an SFT row (string or conversational)."""
    if "messages" in row and "prompt" not in row:
        msgs = list(row["messages"])
        if len(msgs) < 2 or msgs[-1].get("role") != "assistant":
            raise ValueError("an SFT 'messages' row must end with an assistant message after at least one other")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    return {"prompt": row["prompt"], "completion": row["completion"]}


def _tokenizer(model_path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _drop_overlong(examples: list[dict[str, Any]], tokenizer, max_length: int) -> list[dict[str, Any]]:
    """Drop examples whose prompt alone fills ``max_length``: truncation would leave no completion
    token to learn from. Raises if nothing is left, naming the setting to change."""
    kept = [e for e in examples
            if not isinstance(e["prompt"], str) or len(tokenizer(e["prompt"], add_special_tokens=False).input_ids)
            < max_length]
    dropped = len(examples) - len(kept)
    if dropped:
        log.warning("SFT: dropped %d of %d rows whose prompt is longer than train.max_length=%d",
                    dropped, len(examples), max_length)
    if not kept:
        raise ValueError(f"every one of the {len(examples)} SFT rows has a prompt of at least train.max_length="
                         f"{max_length} tokens; raise train.max_length")
    return kept


def _losses(trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def _fit(trainer_cls, model_path: str, args, ds, tokenizer, cfg: TrainConfig, out_dir: Path, *, rows: int,
         t0: float):
    """Load the model, train it with ``trainer_cls`` (a TRL trainer), save it to ``out_dir/model``;
    return the trainer and the stats every kind of training reports."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    trainer = trainer_cls(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer, peft_config=_peft_config(cfg)
    )
    result = trainer.train()
    _save(trainer, tokenizer, out_dir / "model", cfg.lora)
    losses = _losses(trainer)
    return trainer, {
        "rows": rows,
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "train_seconds": result.metrics.get("train_runtime"),
        "seconds": time.time() - t0,
    }


def train_sft(model_path: str, rows: list[dict[str, Any]], cfg: TrainConfig, out_dir: str | Path) -> dict[str, Any]:
    """Supervised fine-tuning on prompt/completion ``rows`` (loss on the completion only).

    Saves the model to ``out_dir/model`` and returns training stats.
    """
    import datasets
    from trl import SFTConfig, SFTTrainer

    out_dir = Path(out_dir)
    t0 = time.time()
    tokenizer = _tokenizer(model_path)
    examples = _drop_overlong([sft_example(r) for r in rows], tokenizer, cfg.max_length)
    ds = datasets.Dataset.from_list(examples)
    args = SFTConfig(
        **_common_args(cfg, out_dir, lr=cfg.lr, epochs=cfg.epochs),
        max_length=cfg.max_length,
        packing=cfg.packing,
        completion_only_loss=True,
        dataset_num_proc=None,
    )
    trainer, stats = _fit(SFTTrainer, model_path, args, ds, tokenizer, cfg, out_dir, rows=len(rows), t0=t0)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * (trainer.state.epoch or 0.0)
    return {**stats, "tokens": int(tokens)}


def train_dpo(model_path: str, rows: list[dict[str, Any]], cfg: TrainConfig, out_dir: str | Path) -> dict[str, Any]:
    """DPO on preference ``rows`` (prompt / chosen / rejected), starting from and referenced to ``model_path``.

    ``cfg.dpo_loss_type`` lists TRL loss types combined with ``cfg.dpo_loss_weights``:
    ``["sigmoid", "sft"]`` is DPO + NLL on the chosen completion (Iterative RPO). Saves the model
    to ``out_dir/model`` and returns training stats (losses, reward accuracy and margin, tokens).
    """
    import datasets
    from trl import DPOConfig, DPOTrainer

    out_dir = Path(out_dir)
    t0 = time.time()
    tokenizer = _tokenizer(model_path)
    ds = datasets.Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    )
    args = DPOConfig(
        **_common_args(cfg, out_dir, lr=cfg.dpo_lr, epochs=cfg.dpo_epochs),
        beta=cfg.dpo_beta,
        loss_type=list(cfg.dpo_loss_type),
        loss_weights=cfg.dpo_loss_weights,
        max_length=cfg.max_length,
        dataset_num_proc=None,
    )
    trainer, stats = _fit(DPOTrainer, model_path, args, ds, tokenizer, cfg, out_dir, rows=len(rows), t0=t0)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tds = trainer.train_dataset
    per_epoch = sum(len(p) * 2 + len(c) + len(r) for p, c, r in
                    zip(tds["prompt_ids"], tds["chosen_ids"], tds["rejected_ids"], strict=True))
    return {
        **stats,
        "reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "reward_margin": logs[-1].get("rewards/margins") if logs else None,
        "beta": cfg.dpo_beta,
        "loss_type": list(cfg.dpo_loss_type),
        "tokens": int(per_epoch * (trainer.state.epoch or 0.0)),
    }
