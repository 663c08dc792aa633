"""The ``train`` section: TRL's and PEFT's own configs as *open* sections (:class:`OpenSection`), and how
training is launched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass
class OpenSection:
    """A section that takes any field of a library's config dataclass, by the library's own name.

    ``args`` holds those fields as written (the YAML and ``config.yaml`` show them flat, beside
    ``enabled``). :meth:`target` is the dataclass they are checked against; ``RESERVED`` names the
    fields starloop sets itself, with where to set them instead, or why.
    """

    enabled: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    RESERVED: ClassVar[dict[str, str]] = {}

    @staticmethod
    def target() -> type:
        raise NotImplementedError


_HUB = ("set the top-level hub section: a trainer's own push would push from every training phase of every "
        "iteration; hub pushes the run's final (or each) checkpoint with a model card")
_TRAINER_RESERVED = {
    "output_dir": "starloop sets it (the stage's folder)",
    "deepspeed": "set train.launch.deepspeed (it applies to SFT and DPO alike)",
    "push_to_hub": _HUB,
    "hub_model_id": _HUB,
}


@dataclass
class SFTSection(OpenSection):
    """TRL ``SFTConfig`` fields. starloop sets ``output_dir``, ``completion_only_loss`` (the loss is on the
    completion), ``deepspeed`` (from ``train.launch``), and on a machine without CUDA ``bf16: false`` and
    ``use_cpu``; it defaults ``save_strategy`` to ``no`` (the stage saves the final model; a partial stage is
    discarded on resume) and ``report_to`` to ``none`` (the run's trackers, ``runtime.report_to``, get each
    iteration's training stats in one tracker run). Everything else is TRL's default."""

    enabled: bool = True
    RESERVED: ClassVar[dict[str, str]] = {
        **_TRAINER_RESERVED,
        "completion_only_loss": "starloop trains on the completion only (verified traces, not prompts)",
    }

    @staticmethod
    def target() -> type:
        from trl import SFTConfig  # heavy: imported only when a train section is validated or run

        return SFTConfig


@dataclass
class DPOSection(OpenSection):
    """TRL ``DPOConfig`` fields (``beta``, ``loss_type``: ``[sigmoid, sft]`` is DPO + NLL as in Iterative
    RPO, ``loss_weights``, ``learning_rate``...), on the pairs stage's preference pairs. Set by starloop
    as for ``train.sft``."""

    enabled: bool = False
    RESERVED: ClassVar[dict[str, str]] = dict(_TRAINER_RESERVED)

    @staticmethod
    def target() -> type:
        from trl import DPOConfig  # heavy: imported only when a train section is validated or run

        return DPOConfig


@dataclass
class LoraSection(OpenSection):
    """PEFT ``LoraConfig`` fields (``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``...); with
    ``enabled`` the trainers train a LoRA adapter, merged into the saved checkpoint."""

    RESERVED: ClassVar[dict[str, str]] = {"task_type": "starloop trains causal language models (CAUSAL_LM)"}

    @staticmethod
    def target() -> type:
        from peft import LoraConfig  # heavy: imported only when a train section is validated or run

        return LoraConfig


@dataclass
class LaunchConfig:
    """How the training phase is started (see runtime/launch.py)."""

    launcher: Literal["inprocess", "subprocess", "accelerate", "torchrun"] = "inprocess"
    num_processes: int = 1
    """Training processes per machine (one per GPU)."""
    num_machines: int = 1
    accelerate_config: str | None = None
    """An accelerate config file (``configs/accelerate/*.yaml`` names a shipped one)."""
    deepspeed: str | None = None
    """A DeepSpeed config file (``configs/deepspeed/*.json`` names a shipped one), for any launcher."""


@dataclass
class TrainConfig:
    init: Literal["base", "previous"] = "previous"
    """Start each iteration from the base model (as STaR does) or from the previous checkpoint."""
    keep_sft_model: bool = True
    """With SFT then DPO: keep the SFT checkpoint as ``train/sft_model`` (false deletes it once DPO is done)."""
    sft: SFTSection = field(default_factory=SFTSection)
    dpo: DPOSection = field(default_factory=DPOSection)
    lora: LoraSection = field(default_factory=LoraSection)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
