"""Typed experiment config: one YAML per experiment (``extends`` another), ``--set key=value``
overrides, every key and type checked before any work starts (see ``loading``); the sections
and what each key means are in ``schema`` (the ``train`` section in ``training``), the cross-field checks
in ``checks``."""

from starloop.loop.config.checks import validate
from starloop.loop.config.loading import (
    MOVED,
    build,
    config_file,
    did_you_mean,
    diff_configs,
    dump_config,
    load_config,
    load_section,
    merge,
    parse_yaml,
    shipped,
)
from starloop.loop.config.schema import (
    CurriculumConfig,
    DataConfig,
    DatasetConfig,
    EvalConfig,
    HubConfig,
    LabelConfig,
    ModelConfig,
    PairsConfig,
    PromptConfig,
    RationalizeConfig,
    RunConfig,
    RuntimeConfig,
    SamplingConfig,
    SelectConfig,
    ServerConfig,
    SynthesizeConfig,
    TeacherConfig,
    VerifyConfig,
    to_plain,
)
from starloop.loop.config.training import (
    DPOSection,
    LaunchConfig,
    LoraSection,
    OpenSection,
    SFTSection,
    TrainConfig,
)
from starloop.loop.errors import ConfigError  # the config's own error, defined with the others

__all__ = [
    "MOVED", "ConfigError", "CurriculumConfig", "DPOSection", "DataConfig", "DatasetConfig", "EvalConfig", "LabelConfig", "LaunchConfig", "LoraSection",
    "HubConfig", "ModelConfig", "OpenSection", "PairsConfig", "PromptConfig", "RationalizeConfig", "RunConfig", "RuntimeConfig",
    "SFTSection", "SamplingConfig", "SelectConfig", "ServerConfig", "SynthesizeConfig", "TeacherConfig", "TrainConfig", "VerifyConfig", "build", "config_file",
    "did_you_mean", "diff_configs", "dump_config", "load_config", "load_section", "merge", "parse_yaml", "shipped", "to_plain",
    "validate",
]
