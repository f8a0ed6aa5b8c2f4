"""GitSource against real git repositories: a bare repository in tmp_path is the remote, commits
are made in a work tree and pushed."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.errors import SourceError, SourceUnavailable
from reconciler.source import GitSource, export_revision


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip()


class Remote:
    """A bare repository and a work tree that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        root.mkdir(parents=True)
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, force: bool = False) -> None:
        git(self.work, "push", "-q", *(["--force"] if force else []), "origin", "main")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "origin")


def make_source(remote: Remote, tmp_path: Path, **kw: object) -> GitSource:
    return GitSource(f"file://{remote.bare}", "main", tmp_path / "state", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", ["file-url", "plain-path"])
def test_first_clone_head_and_checkout(remote: Remote, tmp_path: Path, style: str) -> None:
    sha = remote.commit({"serve.yaml": "applications: []\n", "app/model.py": "X = 1\n"})
    remote.push()
    url = f"file://{remote.bare}" if style == "file-url" else str(remote.bare)
    source = GitSource(url, "main", tmp_path / "state")

    assert source.head() == sha
    tree = source.checkout(sha)

    assert tree == tmp_path / "state" / "trees" / sha
    assert (tree / "serve.yaml").read_text() == "applications: []\n"
    assert (tree / "app" / "model.py").read_text() == "X = 1\n"
    assert not (tree / ".git").exists()
    assert source.fetches == 1


def test_new_commit_is_seen_and_changed_files_lists_it(remote: Remote, tmp_path: Path) -> None:
    first = remote.commit({"serve.yaml": "v: 1\n", "keep.txt": "same\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(source.head())

    second = remote.commit({"serve.yaml": "v: 2\n", "new/file.py": "pass\n"})
    remote.push()

    assert source.head() == second
    tree = source.checkout(second)
    assert (tree / "serve.yaml").read_text() == "v: 2\n"
    assert (source.checkout(first) / "serve.yaml").read_text() == "v: 1\n"
    assert sorted(source.changed_files(first, second)) == ["new/file.py", "serve.yaml"]


def test_checkout_of_a_known_commit_does_not_fetch(remote: Remote, tmp_path: Path) -> None:
    sha = remote.commit({"a.txt": "a\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(sha)
    assert source.fetches == 1

    source.checkout(sha)
    (tmp_path / "state" / "trees" / sha).rename(tmp_path / "gone")  # exported again, not fetched
    again = source.checkout(sha)

    assert source.fetches == 1
    assert (again / "a.txt").read_text() == "a\n"


def test_force_push_to_older_and_rewritten_history_is_followed(
    remote: Remote, tmp_path: Path
) -> None:
    old = remote.commit({"v.txt": "1\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    newer = remote.commit({"v.txt": "2\n"})
    remote.push()
    assert source.head() == newer
    source.checkout(newer)

    git(remote.work, "reset", "-q", "--hard", old)
    remote.push(force=True)
    assert source.head() == old
    assert (source.checkout(old) / "v.txt").read_text() == "1\n"

    rewritten = remote.commit({"v.txt": "3\n"}, message="rewritten")
    remote.push(force=True)
    assert source.head() == rewritten
    assert (source.checkout(rewritten) / "v.txt").read_text() == "3\n"


def test_remote_gone_is_unavailable_and_recovers(remote: Remote, tmp_path: Path) -> None:
    first = remote.commit({"v.txt": "1\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(first)
    second = remote.commit({"v.txt": "2\n"})
    remote.push()
    moved = remote.bare.with_name("moved.git")
    remote.bare.rename(moved)

    with pytest.raises(SourceUnavailable):
        source.head()
    with pytest.raises(SourceUnavailable):
        source.checkout(second)
    assert (source.checkout(first) / "v.txt").read_text() == "1\n"  # what we have still reads

    moved.rename(remote.bare)
    assert source.head() == second
    assert (source.checkout(second) / "v.txt").read_text() == "2\n"


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def test_hanging_remote_times_out(hanging_port: int, tmp_path: Path) -> None:
    url = f"git://127.0.0.1:{hanging_port}/repo.git"
    source = GitSource(url, "main", tmp_path / "state", timeout_s=1.5)

    for call in (source.head, lambda: source.checkout("a" * 40)):
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="timed out"):
            call()
        assert time.monotonic() - started < 1.5 + 6.0  # bounded (slack for a busy machine)


def test_deleted_clone_is_rebuilt(remote: Remote, tmp_path: Path) -> None:
    first = remote.commit({"v.txt": "1\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(first)
    second = remote.commit({"v.txt": "2\n"})
    remote.push()
    subprocess.run(["rm", "-rf", str(tmp_path / "state" / "repo")], check=True)

    assert (source.checkout(second) / "v.txt").read_text() == "2\n"
    assert (tmp_path / "state" / "repo" / "HEAD").is_file()


def test_deleted_head_file_is_rebuilt(remote: Remote, tmp_path: Path) -> None:
    sha = remote.commit({"v.txt": "1\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(sha)
    (tmp_path / "state" / "repo" / "HEAD").unlink()
    (tmp_path / "state" / "trees" / sha).rename(tmp_path / "gone")

    assert (source.checkout(sha) / "v.txt").read_text() == "1\n"
    assert source.fetches == 2


def test_truncated_object_is_rebuilt(remote: Remote, tmp_path: Path) -> None:
    sha = remote.commit({"v.txt": "precious content\n"})
    remote.push()
    source = make_source(remote, tmp_path)
    source.checkout(sha)
    blob = git(remote.work, "rev-parse", f"{sha}:v.txt")
    loose = tmp_path / "state" / "repo" / "objects" / blob[:2] / blob[2:]
    assert loose.is_file(), "small fetches are unpacked into loose objects"
    loose.chmod(0o644)
    loose.write_bytes(loose.read_bytes()[:5])
    (tmp_path / "state" / "trees" / sha).rename(tmp_path / "gone")

    assert (source.checkout(sha) / "v.txt").read_text() == "precious content\n"
    assert source.fetches == 2


def test_commit_not_on_the_branch_is_a_source_error(remote: Remote, tmp_path: Path) -> None:
    remote.commit({"v.txt": "1\n"})
    remote.push()
    source = make_source(remote, tmp_path)

    with pytest.raises(SourceError, match="not on branch 'main'"):
        source.checkout("0123456789" * 4)
    with pytest.raises(SourceError, match="not a full commit id"):
        source.checkout("--upload-pack=touch /tmp/x")


def test_unknown_branch_is_a_source_error(remote: Remote, tmp_path: Path) -> None:
    remote.commit({"v.txt": "1\n"})
    remote.push()
    source = GitSource(f"file://{remote.bare}", "release", tmp_path / "state")

    with pytest.raises(SourceError, match="branch 'release' not found on file://"):
        source.head()
    with pytest.raises(SourceError, match="branch 'release' not found"):
        source.checkout("0123456789" * 4)


def test_credentials_in_url_never_reach_messages(tmp_path: Path) -> None:
    source = GitSource("https://user:secret@127.0.0.1:1/x.git", "main", tmp_path / "state")

    assert "secret" not in source.describe()
    for call in (source.head, lambda: source.checkout("a" * 40)):
        with pytest.raises(SourceUnavailable) as caught:
            call()
        text = str(caught.value) + repr(caught.value.__cause__) + repr(caught.value.__context__)
        assert "127.0.0.1" in text
        assert "secret" not in text
        assert "user:secret" not in text


class _AuthRecorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        else:
            type(self).seen.append(auth)
            self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def auth_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Recorder", (_AuthRecorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_https_credentials_from_environment_go_through_askpass(
    auth_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = auth_server
    environ = {"RECONCILER_GIT_USERNAME": "deployer", "RECONCILER_GIT_PASSWORD": "hunter2-pw"}
    source = GitSource(url, "main", tmp_path / "state", environ=environ)

    with pytest.raises(SourceUnavailable) as caught:
        source.head()

    assert seen == ["Basic " + base64.b64encode(b"deployer:hunter2-pw").decode()]
    assert "hunter2-pw" not in str(caught.value)
    askpass = tmp_path / "state" / ".askpass"
    assert stat.S_IMODE(askpass.stat().st_mode) == 0o700
    assert "hunter2-pw" not in askpass.read_text()


def test_token_in_url_is_lifted_into_askpass(
    auth_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = auth_server
    with_token = url.replace("http://", "http://ci:t0ken-value@")
    source = GitSource(with_token, "main", tmp_path / "state")

    with pytest.raises(SourceUnavailable) as caught:
        source.head()

    assert seen == ["Basic " + base64.b64encode(b"ci:t0ken-value").decode()]
    assert "t0ken-value" not in str(caught.value) + source.describe()


def test_symlinks_and_modes_are_preserved(remote: Remote, tmp_path: Path) -> None:
    remote.commit({"a.txt": "a\n", "bin/run.sh": "#!/bin/sh\n"})
    (remote.work / "bin" / "run.sh").chmod(0o755)
    os.symlink("a.txt", remote.work / "inside")
    os.symlink("../../../etc/passwd", remote.work / "escape")
    remote.commit({})
    remote.push()
    source = make_source(remote, tmp_path)

    tree = source.checkout(source.head())

    assert os.readlink(tree / "inside") == "a.txt"
    assert os.readlink(tree / "escape") == "../../../etc/passwd"
    assert (tree / "bin" / "run.sh").stat().st_mode & 0o111
    assert not (tree / "a.txt").stat().st_mode & 0o111


def test_old_trees_are_pruned(remote: Remote, tmp_path: Path) -> None:
    source = make_source(remote, tmp_path, keep_trees=2)
    shas = []
    for n in range(4):
        shas.append(remote.commit({"v.txt": f"{n}\n"}))
        remote.push()
        source.checkout(shas[-1])

    kept = sorted(p.name for p in (tmp_path / "state" / "trees").iterdir())
    assert kept == sorted(shas[-2:])


def test_export_revision_on_a_local_checkout(remote: Remote, tmp_path: Path) -> None:
    first = remote.commit({"v.txt": "1\n"})
    git(remote.work, "tag", "v1")
    second = remote.commit({"v.txt": "2\n"})

    assert export_revision(remote.work, "HEAD~1", tmp_path / "a") == first
    assert (tmp_path / "a" / "v.txt").read_text() == "1\n"
    assert export_revision(remote.work, "v1", tmp_path / "b") == first
    assert export_revision(remote.work, "main", tmp_path / "c") == second
    assert (tmp_path / "c" / "v.txt").read_text() == "2\n"
    (remote.work / "v.txt").write_text("uncommitted\n")
    assert export_revision(remote.work, second[:10], tmp_path / "d") == second
    assert (tmp_path / "d" / "v.txt").read_text() == "2\n"

    with pytest.raises(SourceError, match="unknown revision 'nope'"):
        export_revision(remote.work, "nope", tmp_path / "e")
    with pytest.raises(SourceError, match="not a git repository"):
        export_revision(tmp_path / "a", "HEAD", tmp_path / "f")


def test_corrupt_object_on_the_remote_is_reported(remote: Remote, tmp_path: Path) -> None:
    sha = remote.commit({"v.txt": "1\n"})
    remote.push()
    blob = git(remote.work, "rev-parse", f"{sha}:v.txt")
    loose = remote.bare / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    loose.write_bytes(loose.read_bytes()[:5])
    source = make_source(remote, tmp_path)

    with pytest.raises(SourceUnavailable, match="cannot fetch from file://"):
        source.checkout(sha)
    assert not (tmp_path / "state" / "trees" / sha).exists()
