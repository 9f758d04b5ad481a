"""The one way to read the project's settings: config/config.yaml is the single source of defaults.

A config file given by the user (``--config``) is laid over those defaults. Every key it sets must exist in
config/config.yaml, so a typo ("simlar_users") is refused with the key's dotted name instead of silently
falling back to a default. Maps listed in ``FREE_FORM`` hold user-chosen keys (a search grid) and are taken whole.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from config.paths_config import CONFIG_PATH
from utils.common_functions import read_yaml

# Sections whose keys are data, not settings: replaced as a whole when a user file sets them.
FREE_FORM = frozenset({"tuning.grid"})


class ConfigError(ValueError):
    """The config file names a setting that does not exist, or cannot be read."""


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """config/config.yaml, with the file at ``path`` (if any) laid over it; raises ConfigError on unknown keys."""
    defaults = read_yaml(CONFIG_PATH)
    if path is None or Path(path).resolve() == CONFIG_PATH.resolve():
        return defaults
    return merge(defaults, read_yaml(path), source=str(path))


def merge(defaults: dict[str, Any], overrides: dict[str, Any], source: str = "the config",
          prefix: str = "") -> dict[str, Any]:
    """A copy of ``defaults`` with ``overrides`` laid over it, refusing keys that ``defaults`` does not have."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(sorted(map(str, defaults))) or "none"
            raise ConfigError(f"{source}: unknown setting '{dotted}' (known here: {known}); fix the name or remove it")
        if isinstance(defaults[key], dict) and dotted not in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping of settings, not {type(value).__name__}")
            merged[key] = merge(defaults[key], value, source, f"{dotted}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged
