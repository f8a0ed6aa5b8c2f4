"""Remote working_dir / py_modules: the fetcher against real HTTPS and HTTP servers the test
makes (a self-signed certificate the fetcher is told to trust), and the loader refusing bad
archives at the URI's line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.errors import ConfigError, FetchRefused, FetchUnavailable
from reconciler.model import ServeConfig
from reconciler.runtime.remote_code import CodeFetcher
from tests.packaging_support import (
    ArchiveServer,
    archive_server,
    self_signed_cert,
    zip_bytes,
)

APP = """\
from ray import serve


@serve.deployment
class Remote:
    def __call__(self, request):
        return "from the zip"


app = Remote.bind()
"""
GOOD = zip_bytes({"proj-main/": "", "proj-main/remote_app.py": APP})


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def https(certs: tuple[Path, Path]) -> Iterator[ArchiveServer]:
    with archive_server(certs) as server:
        yield server


@pytest.fixture
def fetcher(tmp_path: Path, certs: tuple[Path, Path]) -> CodeFetcher:
    return CodeFetcher(tmp_path / "cache", cafile=str(certs[0]), max_bytes=64 << 10)


def test_an_https_zip_is_fetched_once_unpacked_and_stripped(
    https: ArchiveServer, fetcher: CodeFetcher
) -> None:
    url = https.zip("/proj/main.zip", GOOD)
    first = fetcher(url, None)
    assert (first / "remote_app.py").read_text() == APP
    assert fetcher(url, None) == first  # the URI names the content: not fetched again
    assert https.hits["/proj/main.zip"] == 1


def test_a_pinned_archive_in_the_cache_needs_no_network(
    https: ArchiveServer, tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    url = https.zip("/proj/main.zip", GOOD)
    pin = hashlib.sha256(GOOD).hexdigest()
    CodeFetcher(tmp_path / "cache", cafile=str(certs[0]))(url, pin)
    https.routes.clear()  # a new process, and the server gone: the cache answers
    again = CodeFetcher(tmp_path / "cache", cafile=str(certs[0]))(url, pin)
    assert (again / "remote_app.py").is_file()
    assert https.hits["/proj/main.zip"] == 1


def test_a_different_sha256_than_pinned_is_refused(
    https: ArchiveServer, fetcher: CodeFetcher
) -> None:
    url = https.zip("/proj/main.zip", GOOD)
    with pytest.raises(FetchRefused, match="x-sha256 pins"):
        fetcher(url, "0" * 64)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, FetchRefused, "answered 404"),
        (403, FetchRefused, "answered 403"),
        (503, FetchUnavailable, "503"),
        (429, FetchUnavailable, "429"),
    ],
)
def test_http_errors_are_refusals_or_retries(
    https: ArchiveServer, fetcher: CodeFetcher, status: int, error: type[Exception], words: str
) -> None:
    url = https.answer("/x.zip", status)
    with pytest.raises(error, match=words):
        fetcher(url, None)


def test_redirects_only_to_https(
    https: ArchiveServer, fetcher: CodeFetcher, certs: tuple[Path, Path]
) -> None:
    target = https.zip("/real.zip", GOOD)
    ok = https.answer("/moved.zip", 302, {"Location": target})
    assert (fetcher(ok, None) / "remote_app.py").is_file()
    with archive_server(None) as plain:
        insecure = plain.zip("/real.zip", GOOD)
        down = https.answer("/down.zip", 302, {"Location": insecure})
        with pytest.raises(FetchRefused, match="only redirects to https"):
            fetcher(down, None)
        assert plain.hits.get("/real.zip") is None
    to_file = https.answer("/file.zip", 302, {"Location": "file:///etc/passwd"})
    with pytest.raises(FetchRefused, match="only redirects to https"):
        fetcher(to_file, None)


def test_plain_http_only_with_a_pin(fetcher: CodeFetcher) -> None:
    with archive_server(None) as plain:
        url = plain.zip("/code.zip", GOOD)
        with pytest.raises(FetchRefused, match="only with a sha256 pin"):
            fetcher(url, None)
        assert (fetcher(url, hashlib.sha256(GOOD).hexdigest()) / "remote_app.py").is_file()


def test_an_oversized_archive_is_refused(https: ArchiveServer, fetcher: CodeFetcher) -> None:
    big = zip_bytes({"top/blob.bin": bytes(range(256)) * 1024})  # 256 KiB, cap 64 KiB
    with pytest.raises(FetchRefused, match="larger than the cap"):
        fetcher(https.zip("/big.zip", big), None)


def test_an_unreachable_server_is_transient(fetcher: CodeFetcher) -> None:
    with archive_server(None) as plain:
        dead = plain.base.replace("http://", "https://") + "/gone.zip"
    with pytest.raises(FetchUnavailable, match="cannot fetch"):
        fetcher(dead, None)


def test_file_uris_only_under_an_allowed_root(tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    for folder in (allowed, elsewhere):
        folder.mkdir()
        (folder / "code.zip").write_bytes(GOOD)
    fetcher = CodeFetcher(tmp_path / "cache", file_roots=(allowed,))
    assert (fetcher((allowed / "code.zip").as_uri(), None) / "remote_app.py").is_file()
    with pytest.raises(FetchRefused, match="--code-file-root"):
        fetcher((elsewhere / "code.zip").as_uri(), None)


# --- through the loader: the issue sits at the URI's line -------------------------------------

CONFIG = """\
import_path: remote_app:app
runtime_env:
  working_dir: {url}
deployments:
  - name: Remote
"""


def _load(tmp_path: Path, url: str, fetcher: CodeFetcher) -> ServeConfig:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "serve_config.yaml").write_text(CONFIG.format(url=url))
    return spec.load_config(repo, "serve_config.yaml", fetch=fetcher)


def test_the_loader_scans_and_hashes_a_remote_working_dir(
    https: ArchiveServer, fetcher: CodeFetcher, tmp_path: Path
) -> None:
    url = https.zip("/proj/main.zip", GOOD)
    config = _load(tmp_path, url, fetcher)
    (deployment,) = config.deployments()
    assert deployment.name == "Remote"
    assert deployment.code is not None
    assert deployment.code.dirs == (url,)
    assert [path for path, _ in deployment.code.files] == [f"{url}/remote_app.py"]
    assert deployment.code.location(url) == str(fetcher(url, None))


@pytest.mark.parametrize(
    ("archive", "words"),
    [
        (zip_bytes({"top/remote_app.py": APP, "top/../../evil.py": "x"}), "zip-slip"),
        (zip_bytes({"top/blob.bin": b"\0" * (200 << 10)}), "larger than the cap"),
        (b"not a zip at all", "not a zip file"),
    ],
)
def test_the_loader_refuses_bad_archives_at_the_uri_line(
    https: ArchiveServer, fetcher: CodeFetcher, tmp_path: Path, archive: bytes, words: str
) -> None:
    url = https.zip("/bad.zip", archive)
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, url, fetcher)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column) == ("serve_config.yaml", 3, 16)
    assert words in issue.message and url in issue.message


def test_the_loader_lets_a_transient_failure_through(fetcher: CodeFetcher, tmp_path: Path) -> None:
    with archive_server(None) as plain:
        dead = plain.base.replace("http://", "https://") + "/main.zip"
    with pytest.raises(FetchUnavailable):
        _load(tmp_path, dead, fetcher)
