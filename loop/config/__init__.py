"""Typed experiment config: one YAML per experiment (``extends`` another), ``--set key=value``
overrides, every key and type checked before any work starts (see ``loading``); the sections
and what each key means are in ``schema``."""

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
    validate,
)
from starloop.loop.config.schema import (
    DataConfig,
    DatasetConfig,
    DPOSection,
    EvalConfig,
    HubConfig,
    LabelConfig,
    LaunchConfig,
    LoraSection,
    ModelConfig,
    OpenSection,
    PairsConfig,
    PromptConfig,
    RationalizeConfig,
    RunConfig,
    RuntimeConfig,
    SamplingConfig,
    SelectConfig,
    ServerConfig,
    SFTSection,
    TeacherConfig,
    TrainConfig,
    VerifyConfig,
    to_plain,
)
from starloop.loop.errors import ConfigError  # the config's own error, defined with the others

__all__ = [
    "MOVED", "ConfigError", "DPOSection", "DataConfig", "DatasetConfig", "EvalConfig", "LabelConfig", "LaunchConfig", "LoraSection",
    "HubConfig", "ModelConfig", "OpenSection", "PairsConfig", "PromptConfig", "RationalizeConfig", "RunConfig", "RuntimeConfig",
    "SFTSection", "SamplingConfig", "SelectConfig", "ServerConfig", "TeacherConfig", "TrainConfig", "VerifyConfig", "build", "config_file",
    "did_you_mean", "diff_configs", "dump_config", "load_config", "load_section", "merge", "parse_yaml", "shipped", "to_plain",
    "validate",
]
