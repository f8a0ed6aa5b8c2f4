"""The media types the API answers in, shared by the Flask views and the /status fast path."""

from __future__ import annotations

JSON_TYPE = "application/json"
YAML_TYPE = "application/yaml"
YAML_TYPES = (YAML_TYPE, "text/yaml", "application/x-yaml")  # accepted as asking for YAML


def content_type(fmt: str) -> str:
    """The Content-Type of a body rendered as `fmt` ("json" or "yaml")."""
    return YAML_TYPE if fmt == "yaml" else JSON_TYPE
