"""Unit tests of the JSON Schema file and of the translation of its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from reconciler.spec import schema

ROOT = Path(__file__).resolve().parents[2]
REPO_COPY = ROOT / "schemas" / schema.SCHEMA_NAME
PACKAGE_COPY = ROOT / "reconciler" / "spec" / schema.SCHEMA_NAME


def test_repo_and_package_copies_are_identical() -> None:
    assert REPO_COPY.read_bytes() == PACKAGE_COPY.read_bytes()


def test_schema_is_valid_2020_12() -> None:
    loaded = json.loads(REPO_COPY.read_text())
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(loaded)


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield f"{where}.{key}", value
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}[{i}]")


def test_every_property_has_a_description() -> None:
    loaded = json.loads(REPO_COPY.read_text())
    found = list(_properties(loaded))
    assert len(found) > 80
    assert [where for where, prop in found if not prop.get("description")] == []


def test_closed_objects_allow_extension_keys() -> None:
    loaded = json.loads(REPO_COPY.read_text())
    for name in (
        "singleApp",
        "multiApp",
        "application",
        "deployment",
        "runtimeEnv",
        "rayActorOptions",
        "autoscalingConfig",
        "httpOptions",
    ):
        definition = loaded["$defs"][name]
        assert definition["additionalProperties"] is False
        assert "^x-" in definition["patternProperties"]


def test_both_shapes_and_defaults_are_declared() -> None:
    loaded = json.loads(REPO_COPY.read_text())
    assert loaded["if"] == {"required": ["applications"]}
    deployment = loaded["$defs"]["deployment"]["properties"]
    assert deployment["max_ongoing_requests"]["default"] == 5
    assert deployment["health_check_timeout_s"]["default"] == 30.0
    assert loaded["$defs"]["httpOptions"]["properties"]["port"]["maximum"] == 65535


def test_messages_are_plain_words() -> None:
    found = {
        path: (at_key, message)
        for path, at_key, message in schema.check(
            {
                "import_path": "fruit:graph",
                "port": "80",
                "deployments": [{"name": "A", "num_replica": 2, "user_config": [1]}],
            }
        )
    }
    assert found[("port",)] == (False, 'port must be an integer, not a string ("80")')
    assert found[("deployments", 0, "num_replica")] == (
        True,
        "unknown key 'num_replica' (did you mean 'num_replicas'?)",
    )
    assert "user_config must be a mapping or null" in found[("deployments", 0, "user_config")][1]


def test_check_against_one_definition() -> None:
    found = list(schema.check({"name": "A", "num_replicas": 0}, "deployment"))
    assert [(path, message) for path, _, message in found] == [
        (("num_replicas",), 'num_replicas must be a positive integer, "auto" or null')
    ]
    assert list(schema.check({"name": "A"}, "deployment")) == []
