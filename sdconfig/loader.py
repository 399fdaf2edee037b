"""Read the YAML file, apply environment overrides, validate, and explain what is wrong.

Environment:
- `SD_CONFIG`: the file's path (default: `config.yaml` at the repository root).
- `SD__SECTION__KEY=value`: one key, for containers; the value is read as YAML, so
  `SD__SERVER__PORT=9000` is an integer and `SD__TRITON__URLS=[a:8001,b:8001]` a list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sdconfig.schema import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"
ENV_FILE = "SD_CONFIG"
ENV_PREFIX = "SD__"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file, the key and the reason."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(ENV_FILE) or DEFAULT_CONFIG).resolve()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file (set {ENV_FILE} to point at one)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of `data` with every `SD__A__B=v` set at data[a][b]."""
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data)) or {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        node = merged
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(keys)} goes through {key!r}, which is not a section")
            node = child
        try:
            node[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: value {raw!r} is not valid YAML: {exc}") from exc
    return merged


def _explain(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate; raise ConfigError naming each bad key."""
    env = os.environ if env is None else env
    resolved = Path(path).resolve() if path is not None else config_path(env)
    data = apply_env_overrides(_read_yaml(resolved), env)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(resolved, exc)) from None


def resolve_model_path(settings_file: Path, model_id: str) -> str:
    """A model id that names an existing folder beside the config file becomes that folder's path."""
    candidate = Path(model_id)
    if not candidate.is_absolute():
        candidate = settings_file.parent / candidate
    return str(candidate) if candidate.exists() else model_id
