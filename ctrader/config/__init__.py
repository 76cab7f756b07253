"""Configuration: ``load_config()`` returns a validated, frozen ``Config``."""
from ctrader.config.loader import (
    ConfigError,
    config_to_dict,
    data_dir,
    expand_path,
    load_config,
    resolve_config_path,
    shipped_configs,
)
from ctrader.config.schema import Config

__all__ = ["Config", "ConfigError", "config_to_dict", "data_dir", "expand_path", "load_config",
           "resolve_config_path", "shipped_configs"]
