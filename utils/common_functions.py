"""Small generic helpers: reading YAML config and JSON files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key written twice in one mapping: YAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(f"the key '{key}' is written twice (line {key_node.start_mark.line + 1}): keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        loader = _UniqueKeyLoader(handle)  # what yaml.safe_load does, with the duplicate-key check
        try:
            content = loader.get_single_data()
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {error}") from error
        finally:
            loader.dispose()
    if not isinstance(content, dict):
        raise ValueError(f"config file {path} must hold a YAML mapping at the top level")
    return content


def read_json(path: str | Path) -> Any:
    with Path(path).open(encoding="utf-8") as handle:
        return json.load(handle)
