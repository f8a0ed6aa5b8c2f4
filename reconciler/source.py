"""The git source: one branch of one repository, read at exact commits (the only module importing
GitPython).

The remote is asked for the branch head with `ls-remote` (no fetch). A commit is read from a bare
clone in `workdir/repo` and exported, blob by blob, into an immutable directory
`workdir/trees/<commit>`; a moving work tree is never read. Every network operation is bounded by a
timeout, credentials reach git only through an askpass helper, and every message we raise is
scrubbed of them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import git
from git.exc import GitError, ODBError

from reconciler.errors import BranchMissing, SourceError, SourceUnavailable, StateError
from reconciler.records import CommitInfo

log = logging.getLogger(__name__)

_SHA = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_ABBREV = re.compile(r"\A[0-9a-f]{4,64}\Z")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:access_token|private_token|token|password|passwd|secret)=)[^&\s#\"']+",
    re.IGNORECASE,
)
_TOKEN_SHAPES = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{16,})")
_AUTH_HEADER = re.compile(r"(?P<key>\bAuthorization:\s*(?:Basic|Bearer|token)\s+)\S+", re.I)
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
_ASKPASS = """#!/bin/sh
# Written by the reconciler: hands git the credentials from its own environment.
case "$1" in
  Username*) printf '%s\\n' "$RECONCILER_ASKPASS_USERNAME" ;;
  *) printf '%s\\n' "$RECONCILER_ASKPASS_PASSWORD" ;;
esac
"""


def scrub(text: str) -> str:
    """`text` with credentials removed: URL passwords and tokens, token-like query parameters,
    Authorization headers and well-known access-token shapes."""

    def userinfo(match: re.Match[str]) -> str:
        scheme, info = match["scheme"], match["userinfo"]
        if ":" in info:
            return f"{scheme}{info.split(':', 1)[0]}:***@"
        is_ssh = scheme[:-3].lower() in _SSH_SCHEMES
        return f"{scheme}{info}@" if is_ssh else f"{scheme}***@"

    text = _URL_USERINFO.sub(userinfo, text)
    text = _SECRET_PARAM.sub(lambda m: f"{m['key']}***", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['key']}***", text)
    return _TOKEN_SHAPES.sub("***", text)


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without credentials, user, password) for HTTP(S) URLs; other URLs unchanged."""
    if "://" not in url:
        return url, None, None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts._replace(netloc=host).geturl(), user, password


class GitSource:
    """One branch of one git repository, exported at exact commits."""

    def __init__(
        self,
        url: str,
        branch: str,
        workdir: Path,
        *,
        timeout_s: float = 60.0,
        environ: Mapping[str, str] | None = None,
        keep_trees: int = 5,
    ) -> None:
        if not branch or branch.startswith("-") or any(c in branch for c in " \t\n~^:?*[\\"):
            raise SourceError(f"invalid branch name {branch!r}")
        self._url = url
        self._fetch_url, user, password = _split_credentials(url)
        self._branch = branch
        self._workdir = Path(workdir)
        self._repo_dir = self._workdir / "repo"
        self._trees = self._workdir / "trees"
        self._timeout = timeout_s
        self._keep = max(1, keep_trees)
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self.fetches = 0  # network fetches and clones made so far (tests and metrics read it)
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._env = self._git_env(dict(os.environ if environ is None else environ), user, password)

    # --- public API ---------------------------------------------------------------------

    def describe(self) -> str:
        """The repository URL with credentials removed."""
        return scrub(self._url)

    def head(self) -> str:
        """The commit the remote branch points at now (asks the remote; fetches nothing)."""
        ref = f"refs/heads/{self._branch}"
        status, out, err = self._network(["ls-remote", "--", self._fetch_url, ref], "ls-remote")
        if status != 0:
            raise SourceUnavailable(self._redact(f"cannot reach {self.describe()}: {err}"))
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        raise BranchMissing(f"branch '{self._branch}' not found on {self.describe()}")

    def checkout(self, commit: str) -> Path:
        """An immutable directory holding the tree of exactly `commit` (fetched if missing)."""
        if not _SHA.match(commit):
            raise SourceError(f"not a full commit id: {commit[:80]!r}")
        dest = self._trees / commit
        with self._lock:
            if dest.is_dir():
                os.utime(dest)  # the newest-used trees are the ones kept
                return dest
            try:
                self._export_once(commit, dest)
            except _Damaged as first:
                why = self._redact(str(first))
                log.warning("rebuilding the clone of %s: %s", self.describe(), why)
                self._clone()
                try:
                    self._export_once(commit, dest)
                except _Damaged as again:
                    raise SourceError(self._redact(str(again))) from None
            self._prune_trees(keep=dest)
            return dest

    def commit_info(self, commit: str) -> CommitInfo:
        """Author, author date and subject of a commit already in the clone (no network)."""
        if not _SHA.match(commit):
            raise SourceError(f"not a full commit id: {commit[:80]!r}")
        with self._lock, git.Repo(self._repo_dir) as repo:
            try:
                c = repo.commit(commit)
                subject = c.summary
                if isinstance(subject, bytes):
                    subject = subject.decode(errors="replace")
                return CommitInfo(str(c.author.name or ""), float(c.authored_date), subject)
            except (GitError, ODBError, ValueError) as exc:
                raise SourceError(self._redact(f"cannot read commit {commit}: {exc}")) from None

    def resolve(self, rev: str) -> str:
        """The full id of the commit a full or abbreviated hex id names (at least 4 digits),
        fetching the branch once if the clone does not have it."""
        rev = rev.strip().lower()
        if not _ABBREV.match(rev):
            raise SourceError(
                f"not a commit id: {rev[:80]!r} (give its hex id, full or abbreviated)"
            )
        with self._lock:
            self._ensure_clone()
            found = self._rev_parse(rev)
            if found is None:
                self._fetch()
                found = self._rev_parse(rev)
        if found is None:
            raise SourceError(
                f"no commit {rev} on branch '{self._branch}' of {self.describe()} "
                "(or the abbreviation names several: give more digits)"
            )
        return found

    def _rev_parse(self, rev: str) -> str | None:
        with git.Repo(self._repo_dir) as repo:
            try:
                out = str(repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")).strip()
            except GitError:
                return None
        return out if _SHA.match(out) else None

    def changed_files(self, base: str, head: str) -> list[str]:
        """Repository-relative paths that differ between two commits (renames as both paths)."""
        for commit in (base, head):
            if not _SHA.match(commit):
                raise SourceError(f"not a full commit id: {commit[:80]!r}")
        with self._lock:
            self._ensure_clone()
            missing = [c for c in (base, head) if not self._has_commit(c)]
            if missing:
                self._fetch()
            for commit in (base, head):
                if not self._has_commit(commit):
                    raise SourceError(f"commit {commit[:40]!r} is not in {self.describe()}")
            with git.Repo(self._repo_dir) as repo:
                try:
                    out = repo.git.diff("--name-only", "--no-renames", "-z", base, head, "--")
                except GitError as exc:
                    raise SourceError(self._redact(f"cannot compare commits: {exc}")) from None
            return [p for p in str(out).split("\0") if p]

    # --- git plumbing -------------------------------------------------------------------

    def _git_env(self, environ: dict[str, str], user: str | None, pw: str | None) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
        token = environ.get("RECONCILER_GIT_TOKEN")
        user = environ.get("RECONCILER_GIT_USERNAME") or user
        pw = token or environ.get("RECONCILER_GIT_PASSWORD") or pw
        if user or pw:
            askpass = self._workdir / ".askpass"
            askpass.write_text(_ASKPASS)
            askpass.chmod(0o700)
            env["GIT_ASKPASS"] = str(askpass)
            env["RECONCILER_ASKPASS_USERNAME"] = user or ("x-access-token" if token else "")
            env["RECONCILER_ASKPASS_PASSWORD"] = pw or ""
            self._secrets = [s for s in (pw, user if pw is None else None) if s and len(s) >= 4]
        key = environ.get("RECONCILER_GIT_SSH_KEY")
        if key:
            env["GIT_SSH_COMMAND"] = _ssh_command(key, environ.get("RECONCILER_GIT_KNOWN_HOSTS"))
        return env

    def _redact(self, text: str) -> str:
        text = scrub(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text.strip()

    def _network(self, args: Sequence[str], what: str, cwd: Path | None = None) -> _Result:
        """Run a git command that talks to the remote, killed after the timeout."""
        command = ["git", "-c", "credential.helper=", *args]
        runner = git.Git(str(cwd or self._workdir))
        started = time.monotonic()
        status, out, err = runner.execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=self._timeout,
            env=self._env,
        )
        if status != 0 and time.monotonic() - started >= self._timeout:
            msg = f"git {what} of {self.describe()} timed out after {self._timeout:g}s"
            raise SourceUnavailable(msg)
        return status, str(out), str(err)

    def _ensure_clone(self) -> None:
        if not self._clone_is_sound():
            if self._repo_dir.exists():
                log.warning("the clone in %s is damaged; cloning again", self._repo_dir)
            self._clone()

    def _clone_is_sound(self) -> bool:
        if not (self._repo_dir / "HEAD").is_file():
            return False
        try:
            with git.Repo(self._repo_dir) as repo:
                repo.git.rev_parse("--git-dir")
        except (GitError, ODBError, ValueError, OSError):
            return False
        return True

    def _clone(self) -> None:
        """A fresh bare clone, built beside the old one and swapped in only when complete."""
        tmp = self._workdir / f".repo-{uuid.uuid4().hex[:8]}"
        try:
            try:
                self._workdir.mkdir(parents=True, exist_ok=True)
                git.Repo.init(tmp, bare=True).close()
            except (GitError, OSError) as exc:  # a full or read-only state directory
                why = str(getattr(exc, "stderr", "") or exc).strip().removeprefix("stderr: ")
                raise StateError(f"cannot create a clone in {self._workdir}: {why}") from None
            self._fetch(into=tmp)
            old = self._workdir / f".old-{uuid.uuid4().hex[:8]}"
            if self._repo_dir.exists():
                self._repo_dir.rename(old)
            tmp.rename(self._repo_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _fetch(self, into: Path | None = None) -> None:
        refspec = f"+refs/heads/{self._branch}:refs/remotes/origin/{self._branch}"
        target = into or self._repo_dir
        self.fetches += 1
        # --git-dir: a GIT_DIR inherited from a git hook must not redirect the fetch.
        args = [f"--git-dir={target}", "fetch", "--quiet", "--no-tags", "--no-auto-gc", "--"]
        args += [self._fetch_url, refspec]
        status, _, err = self._network(args, "fetch", cwd=target)
        if status == 0:
            return
        if "couldn't find remote ref" in err:
            raise BranchMissing(f"branch '{self._branch}' not found on {self.describe()}")
        if into is None:
            # A fetch can fail because our clone is damaged; a fresh clone tells the two apart.
            log.warning("fetch into %s failed (%s); cloning again", target, self._redact(err))
            self._clone()
            return
        raise SourceUnavailable(self._redact(f"cannot fetch from {self.describe()}: {err}"))

    def _has_commit(self, commit: str) -> bool:
        try:
            with git.Repo(self._repo_dir) as repo:
                repo.git.cat_file("-e", f"{commit}^{{commit}}")
        except (GitError, ODBError, ValueError):
            return False
        return True

    def _export_once(self, commit: str, dest: Path) -> None:
        self._ensure_clone()
        if not self._has_commit(commit):
            self._fetch()
            if not self._has_commit(commit):
                where = f"branch '{self._branch}' of {self.describe()}"
                raise _Damaged(f"commit {commit} is not on {where}")
        with git.Repo(self._repo_dir) as repo:
            _export_commit(repo, commit, dest)

    def _prune_trees(self, keep: Path) -> None:
        trees = [p for p in self._trees.iterdir() if p.is_dir() and _SHA.match(p.name)]
        trees.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [t for t in trees if t != keep][self._keep - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
        for leftover in self._trees.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)


_Result = tuple[int, str, str]


class _Damaged(Exception):
    """The clone could not give us a commit's tree; a fresh clone may."""


def _ssh_command(key: str, known_hosts: str | None) -> str:
    import shlex

    parts = ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    if known_hosts:
        parts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    return " ".join(shlex.quote(p) for p in parts)


# --- tree export ----------------------------------------------------------------------------


def export_revision(repo_dir: Path, rev: str, dest: Path) -> str:
    """Export the tree of `rev` (branch, tag, sha, HEAD~1...) of a local repository to `dest`
    (which must not exist or be empty) and return the commit id."""
    if not rev or rev.startswith("-"):
        raise SourceError(f"unknown revision {rev!r}")
    try:
        repo = git.Repo(repo_dir)
    except (GitError, OSError) as exc:
        raise SourceError(f"{repo_dir} is not a git repository ({type(exc).__name__})") from None
    with repo:
        try:
            commit = str(repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")).strip()
        except GitError:
            raise SourceError(f"unknown revision '{rev}' in {repo_dir}") from None
        try:
            _export_commit(repo, commit, Path(dest))
        except _Damaged as exc:
            raise SourceError(str(exc)) from None
    return commit


def _export_commit(repo: git.Repo, commit: str, dest: Path) -> None:
    """Write the tree of `commit` into `dest` atomically (built in a sibling, then renamed)."""
    if dest.exists() and any(dest.iterdir()):
        raise SourceError(f"{dest} exists and is not empty")
    tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_tree(repo, commit, tmp)
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except (GitError, ODBError, ValueError, AssertionError) as exc:
        raise _Damaged(f"cannot read commit {commit}: {type(exc).__name__}: {exc}") from None
    except OSError as exc:  # the disk, not the commit: a full or read-only state directory
        raise StateError(f"cannot export commit {commit} to {dest}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_tree(repo: git.Repo, commit: str, root: Path) -> None:
    """Every blob of the commit's tree, with its mode; symlinks stay symlinks (the config loader
    judges where they point). Submodules become empty directories, as `git archive` does."""
    for item in repo.commit(commit).tree.traverse():
        if not isinstance(item, git.Tree | git.Blob | git.Submodule):
            continue
        path = root.joinpath(*_safe_parts(str(item.path)))
        mode = int(item.mode)
        if isinstance(item, git.Blob) and stat.S_ISLNK(mode):
            os.symlink(os.fsdecode(item.data_stream.read()), path)
        elif isinstance(item, git.Blob):
            _write_blob(item, path, 0o755 if mode & 0o100 else 0o644)
        else:
            path.mkdir()


def _write_blob(item: git.Blob, path: Path, mode: int) -> None:
    # O_EXCL|O_NOFOLLOW: a crafted tree cannot overwrite a file or write through a symlink.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(item.data_stream, out)
    os.chmod(path, mode)  # the umask must not decide a file's mode


def _safe_parts(path: str) -> list[str]:
    parts = path.split("/")
    if any(p in ("", ".", "..", ".git") or "\0" in p for p in parts):
        raise SourceError(f"refusing unsafe path in the git tree: {path!r}")
    return parts
