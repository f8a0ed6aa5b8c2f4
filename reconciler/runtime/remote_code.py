"""Fetch remote working_dir / py_modules archives (the loader's `Fetch` port): https:// zips,
plain http:// only when the config pins the sha256, file:// zips only under directories the
operator allowed (`--code-file-root`). Standard-library HTTP with a size cap, a time limit and
redirects only to https (never to another scheme: https -> http or file: is refused).

A network failure, a timeout or a 5xx/429 answer is `FetchUnavailable` (retried with backoff,
the last good commit keeps running); content that cannot be used (4xx, too large, not a zip, a
member leaving the archive, a sha256 other than the pinned one) is `FetchRefused` (the commit is
refused at the URI's line).

Archives are unpacked (`zipsafe`) into `<cache>/code/<url hash>-<content sha256>/`, written
beside and renamed into place, so a cache entry is complete or absent. As in Ray, the URI names
the content: one process fetches a URI once; a pinned URI already in the cache is not fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from reconciler.errors import FetchRefused, FetchUnavailable
from reconciler.runtime import zipsafe

DEFAULT_MAX_BYTES = 100 << 20
DEFAULT_TIMEOUT_S = 60.0
MAX_MEMBERS = 20_000
_CHUNK = 1 << 16
_USERINFO = re.compile(r"//[^/@\s]*@")


def default_cache_dir() -> Path:
    """Where wheels, fetched archives and image notes are kept when no state dir is given."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "serve-reconciler"


def scrub(uri: str) -> str:
    """The URI without user:password@ (never in a message or a log line)."""
    return _USERINFO.sub("//", uri)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to https (from plain http: also to http); never to file: etc."""

    max_redirections = 5

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        old = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new = urllib.parse.urlsplit(newurl).scheme.lower()
        if new != "https" and not (old == new == "http"):
            raise FetchRefused(
                f"the server redirected to {scrub(newurl)}: only redirects to https:// are followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class CodeFetcher:
    """Brings remote code archives onto this machine; safe to call from several threads."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        file_roots: tuple[Path, ...] = (),
        cafile: str | None = None,
    ) -> None:
        self._dir = Path(cache_dir) / "code"
        self._max_bytes = max_bytes
        self._timeout = timeout_s
        self._file_roots = tuple(Path(os.path.realpath(p)) for p in file_roots)
        context = ssl.create_default_context(cafile=cafile)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _HttpsOnlyRedirects()
        )
        self._lock = threading.Lock()
        self._seen: dict[str, Path] = {}  # URI -> unpacked directory, fetched by this process
        self.fetches = 0  # archives downloaded (tests count them)

    def __call__(self, uri: str, sha256: str | None) -> Path:
        with self._lock:
            known = self._seen.get(uri)
            if known is not None and known.is_dir() and (sha256 is None or sha256 in known.name):
                return known
            if sha256 is not None:
                cached = self._entry(uri, sha256)
                if cached.is_dir():
                    self._seen[uri] = cached
                    return cached
        found = self._fetch(uri, sha256)
        with self._lock:
            self._seen[uri] = found
        return found

    def _entry(self, uri: str, sha256: str) -> Path:
        key = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
        return self._dir / f"{key}-{sha256}"

    def _fetch(self, uri: str, pinned: str | None) -> Path:
        self._dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._dir, prefix=".fetch-") as tmp:
            archive = Path(tmp) / "archive.zip"
            digest = self._download(uri, pinned, archive)
            if pinned is not None and digest != pinned:
                raise FetchRefused(
                    f"the archive's sha256 is {digest}, but x-sha256 pins {pinned}; "
                    "fix the pin or the URI"
                )
            entry = self._entry(uri, digest)
            if entry.is_dir():
                return entry
            staged = Path(tmp) / "unpacked"
            zipsafe.unpack(archive, staged, max_bytes=self._max_bytes, max_files=MAX_MEMBERS)
            with contextlib.suppress(OSError):  # another thread or process got there first
                os.rename(staged, entry)
            if not entry.is_dir():
                raise FetchRefused(f"could not store the archive in {self._dir}")
            return entry

    def _download(self, uri: str, pinned: str | None, dest: Path) -> str:
        scheme = urllib.parse.urlsplit(uri).scheme.lower()
        if scheme == "file":
            return self._copy_file(uri, dest)
        if scheme == "http" and pinned is None:
            raise FetchRefused(
                "plain http:// is fetched only with a sha256 pin (x-sha256); use https://"
            )
        if scheme not in ("http", "https"):
            raise FetchRefused(f"{scheme}:// archives are not fetched here")
        self.fetches += 1
        request = urllib.request.Request(uri, headers={"User-Agent": "serve-reconciler"})
        deadline = time.monotonic() + self._timeout
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                size = int(response.headers.get("Content-Length") or 0)
                if size > self._max_bytes:
                    raise self._too_large(size)
                return self._save(response, dest, deadline)
        except urllib.error.HTTPError as exc:
            raise self._http_error(uri, exc) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchUnavailable(f"cannot fetch {scrub(uri)}: {reason}") from None

    def _save(self, response: Any, dest: Path, deadline: float) -> str:
        digest = hashlib.sha256()
        total = 0
        with open(dest, "wb") as out:
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > self._max_bytes:
                    raise self._too_large(total)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the download took longer than {self._timeout:g}s")
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def _too_large(self, size: int) -> FetchRefused:
        return FetchRefused(
            f"the archive is larger than the cap ({size} > {self._max_bytes} bytes; "
            "--max-code-bytes raises it)"
        )

    def _http_error(self, uri: str, exc: urllib.error.HTTPError) -> Exception:
        what = f"{scrub(uri)} answered {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            return FetchUnavailable(f"cannot fetch {what}")
        if 300 <= exc.code < 400:  # urllib refused to follow it: another scheme, or a loop
            location = scrub(str(exc.headers.get("Location", "")))
            return FetchRefused(
                f"the server redirected to {location}: only redirects to https:// are followed"
            )
        return FetchRefused(f"the server answered {exc.code} {exc.reason}")

    def _copy_file(self, uri: str, dest: Path) -> str:
        path = Path(os.path.realpath(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path)))
        if not any(path.is_relative_to(root) for root in self._file_roots):
            raise FetchRefused(
                "file:// archives are read only under a directory the reconciler was given "
                "with --code-file-root"
            )
        if not path.is_file():
            raise FetchRefused(f"{path} is not a file")
        if path.stat().st_size > self._max_bytes:
            raise self._too_large(path.stat().st_size)
        shutil.copyfile(path, dest)
        return hashlib.sha256(dest.read_bytes()).hexdigest()
