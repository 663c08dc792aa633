"""Training: a thin layer over TRL's ``SFTTrainer`` (and ``DPOTrainer``); trainers are called,
never subclassed. Checkpoints are saved in Hugging Face format that both samplers load.
"""

from __future__ import annotations

import logging
import math
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
    if trainer.accelerator.is_main_process:
        unwrapped = trainer.accelerator.unwrap_model(model)
        unwrapped.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()


def train_sft(model_path: str, rows: list[dict[str, Any]], cfg: TrainConfig, out_dir: str | Path) -> dict[str, Any]:
    """Supervised fine-tuning on prompt/completion ``rows`` (loss on the completion only).

    Saves the model to ``out_dir/model`` and returns training stats.
    """
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out_dir = Path(out_dir)
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ds = datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    args = SFTConfig(
        **_common_args(cfg, out_dir, lr=cfg.lr, epochs=cfg.epochs),
        max_length=cfg.max_length,
        packing=cfg.packing,
        completion_only_loss=True,
        dataset_num_proc=None,
    )
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer, peft_config=_peft_config(cfg)
    )
    result = trainer.train()
    _save(trainer, tokenizer, out_dir / "model", cfg.lora)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * max(1.0, float(cfg.epochs))
    return {
        "rows": len(rows),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "tokens": int(tokens),
        "seconds": time.time() - t0,
    }


def steps_for(rows: int, cfg: TrainConfig) -> int:
    per_step = cfg.batch_size * cfg.grad_accum
    return cfg.max_steps if cfg.max_steps > 0 else math.ceil(rows / per_step * cfg.epochs)
