"""`reconciler status` and `reconciler config` against the live API, and against an address
where nothing listens. The parser holds only these two subcommands, as registered by their
modules, so the test does not depend on the other subcommands."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator

import pytest
import yaml
from api_support import (
    COMMIT_A,
    MULTI_DOCUMENT,
    SINGLE_DOCUMENT,
    LiveApi,
    multi_snapshot,
    single_snapshot,
)

from reconciler.cli import config_cmd, status_cmd
from reconciler.cli.serve_client import ADDRESS_ENV, DEFAULT_ADDRESS, resolve_address


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="reconciler")
    sub = parser.add_subparsers()
    status_cmd.register(sub)
    config_cmd.register(sub)
    args = parser.parse_args(argv)
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def dead_address() -> Iterator[str]:
    """An address on loopback where nothing listens (a port bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_status_single_prints_serve_yaml(api: LiveApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.state.snapshot = single_snapshot()
    code, out, err = _cli(capsys, "status", "-a", api.url)
    assert (code, err) == (0, "")
    assert out.startswith("name: default\napp_status:\n  status: DEPLOYING\n")
    printed = yaml.safe_load(out)
    assert printed["deployment_statuses"][0]["name"] == "MangoStand"
    assert printed["applied_commit"] == COMMIT_A


def test_status_before_first_deploy(api: LiveApi, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "status", "--address", api.url)
    assert code == 0
    assert yaml.safe_load(out)["app_status"]["status"] == "NOT_STARTED"


def test_status_multi_prints_one_document_per_app(
    api: LiveApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.snapshot = multi_snapshot()
    code, out, _ = _cli(capsys, "status", "-a", api.url)
    documents = list(yaml.safe_load_all(out))
    assert code == 0
    assert [d["name"] for d in documents] == ["fruit", "hello"]
    assert documents[1]["app_status"]["status"] == "UNHEALTHY"
    assert "\n---\n" in "\n" + out


def test_status_name_selects_one_app(api: LiveApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.state.snapshot = multi_snapshot()
    code, out, _ = _cli(capsys, "status", "-a", api.url, "-n", "hello")
    assert code == 0
    assert [d["name"] for d in yaml.safe_load_all(out)] == ["hello"]


def test_status_unknown_name_fails_listing_the_apps(
    api: LiveApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.snapshot = multi_snapshot()
    code, out, err = _cli(capsys, "status", "-a", api.url, "--name", "nope")
    assert (code, out) == (1, "")
    assert "no application named 'nope'" in err and "'fruit'" in err


def test_status_json(api: LiveApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.state.snapshot = multi_snapshot()
    code, out, _ = _cli(capsys, "status", "-a", api.url, "--format", "json")
    assert code == 0
    assert json.loads(out) == api.client.get("/status").json()


def test_address_from_environment(
    api: LiveApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADDRESS_ENV, api.url)
    code, out, _ = _cli(capsys, "status")
    assert code == 0 and "app_status" in out


def test_address_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert resolve_address(None) == DEFAULT_ADDRESS == "http://127.0.0.1:8265"
    assert resolve_address("localhost:9000/") == "http://localhost:9000"
    monkeypatch.setenv(ADDRESS_ENV, "http://10.0.0.1:1")
    assert resolve_address("http://127.0.0.1:2") == "http://127.0.0.1:2"


@pytest.mark.parametrize("command", ["status", "config"])
def test_nothing_listening_exits_1_with_advice(
    capsys: pytest.CaptureFixture[str], dead_address: str, command: str
) -> None:
    code, out, err = _cli(capsys, command, "-a", dead_address)
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: could not reach the reconciler at {dead_address}: connection refused. "
        "Is `reconciler run` running? Pass -a/--address or set RECONCILER_ADDRESS."
    )


def test_config_single_prints_the_document(
    api: LiveApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.snapshot = single_snapshot()
    code, out, _ = _cli(capsys, "config", "-a", api.url)
    assert code == 0
    assert out.splitlines()[0] == f"# commit {COMMIT_A}"
    assert yaml.safe_load(out) == SINGLE_DOCUMENT


def test_config_multi_prints_one_document_per_app(
    api: LiveApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.snapshot = multi_snapshot()
    code, out, _ = _cli(capsys, "config", "-a", api.url)
    assert code == 0
    assert list(yaml.safe_load_all(out)) == MULTI_DOCUMENT["applications"]
    code, out, _ = _cli(capsys, "config", "-a", api.url, "-n", "hello")
    assert list(yaml.safe_load_all(out)) == [MULTI_DOCUMENT["applications"][1]]


def test_config_before_first_deploy_exits_1(
    api: LiveApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "config", "-a", api.url)
    assert (code, out) == (1, "")
    assert "no config has been applied yet" in err and api.url in err


def test_not_the_reconciler_exits_1(make_api, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    def broken() -> None:
        raise RuntimeError("boom")

    live = make_api(snapshot=broken)
    code, _, err = _cli(capsys, "status", "-a", live.url)
    assert code == 1
    assert "answered 500" in err
