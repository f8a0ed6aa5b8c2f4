"""The bodies every view answers with: a value as JSON or YAML, and the JSON error shape
{"error": message, ...} (the OpenAPI document's Error)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from reconciler.api.media import JSON_TYPE, content_type
from reconciler.spec.yamlout import dump_yaml


def render(value: Any, fmt: str, status: int = 200) -> Response:
    return Response(render_text(value, fmt), status=status, content_type=content_type(fmt))


def render_text(value: Any, fmt: str) -> str:
    return (
        dump_yaml(value)
        if fmt == "yaml"
        else json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n"
    )


def json_response(value: Any, status: int = 200) -> Response:
    return Response(render_text(value, "json"), status=status, content_type=JSON_TYPE)


def error_response(status: int, message: str, **more: Any) -> Response:
    return json_response({"error": message, **more}, status)
