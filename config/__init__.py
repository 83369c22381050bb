"""Configuration: the YAML schema, loading with ``${ENV}`` secrets, errors with positions."""

from config.errors import ConfigError
from config.loader import DEFAULT_CONFIG_PATH, config_json_schema, find_config_path, load_config
from config.models import (
    AppConfig,
    CsvSource,
    PushConfig,
    PushField,
    Schedule,
    SourceConfig,
    parse_duration,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AppConfig",
    "ConfigError",
    "CsvSource",
    "PushConfig",
    "PushField",
    "Schedule",
    "SourceConfig",
    "config_json_schema",
    "find_config_path",
    "load_config",
    "parse_duration",
]
