"""Schemathesis against the live server, from the OpenAPI document it serves: every check
(no 5xx, status codes, content types, headers and bodies as documented, bad input refused,
wrong methods answered 405 with Allow), for each shape of state the API can show."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from api_support import API_TOKEN, MakeApi, multi_snapshot, single_snapshot

from reconciler.model import Snapshot

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.mark.parametrize(
    "make_snapshot",
    [Snapshot, single_snapshot, multi_snapshot],
    ids=["before-first-deploy", "single", "multi"],
)
def test_schemathesis_finds_nothing(
    make_api: MakeApi, tmp_path: Path, make_snapshot: Callable[[], Snapshot]
) -> None:
    live = make_api()
    live.state.snapshot = make_snapshot()
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20240601",
            "--workers",
            "1",
            "--generation-database",
            ":memory:",
            "--request-timeout",
            "10",
            "--no-color",
            # The changing endpoints with the token; schemathesis also sends them without it.
            "--header",
            f"Authorization: Bearer {API_TOKEN}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "14 selected / 14 total" in output
    assert " failed" not in output.split("Test cases:")[-1], output[-3000:]
