"""The service's configuration: one YAML file, one typed schema, shared by both sides."""

from sdconfig.loader import ConfigError, config_path, load_settings, resolve_model_path
from sdconfig.schema import MODES, Mode, Settings

__all__ = ["MODES", "ConfigError", "Mode", "Settings", "config_path", "load_settings", "resolve_model_path"]
