"""Loading the package's YAML data files: safe loading, duplicate keys refused (the last one would silently win)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from yaml.nodes import MappingNode


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml when available
    """SafeLoader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: _StrictLoader, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise ValueError(f"{mark.name}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r}")
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_text(text: str, name: str) -> Any:
    """Parse YAML text; ``name`` appears in error messages."""
    loader = _StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_resource(filename: str) -> Any:
    """Parse one of this package's data files (``catalogue.yaml``, ``gvlk.yaml``, ``messages.yaml``)."""
    text = resources.files("orchestrator.knowledge").joinpath(filename).read_text(encoding="utf-8")
    return load_text(text, filename)
