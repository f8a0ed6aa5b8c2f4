"""Real servers for the dependency tests, made by the tests, so nothing depends on the network:
tiny pure-Python wheels written by hand (a wheel is a zip with a dist-info), a PEP 503 "simple"
index over them (http.server's directory listings are link pages pip reads), an HTTPS server with
a self-signed certificate for remote working_dir zips, and zip archives (good and hostile)."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import ssl
import stat
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

Route = tuple[int, dict[str, str], bytes]  # status, headers, body


def make_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A pure-Python wheel of one module `name` holding `source`."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def simple_index(root: Path, wheels: Mapping[str, list[tuple[str, str]]]) -> Iterator[str]:
    """A PEP 503 index on 127.0.0.1 serving {project: [(version, source), ...]}; yields its
    URL (…/simple)."""
    for project, versions in wheels.items():
        for version, source in versions:
            make_wheel(root / "simple" / project, project, version, source)
    handler = functools.partial(_Quiet, directory=str(root))
    with _serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield f"http://127.0.0.1:{port}/simple"


@contextmanager
def _serving(server: http.server.HTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class ArchiveServer:
    """Routes (path -> status, headers, body) over HTTPS (or plain HTTP); `hits` counts GETs."""

    routes: dict[str, Route] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    base: str = ""

    def zip(self, path: str, data: bytes) -> str:
        self.routes[path] = (200, {"Content-Type": "application/zip"}, data)
        return self.base + path

    def answer(self, path: str, status: int, headers: dict[str, str] | None = None) -> str:
        self.routes[path] = (status, headers or {}, b"")
        return self.base + path


def _handler(server: ArchiveServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.hits[self.path] = server.hits.get(self.path, 0) + 1
            status, headers, body = server.routes.get(self.path, (404, {}, b"not here"))
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def archive_server(certs: tuple[Path, Path] | None) -> Iterator[ArchiveServer]:
    """An ArchiveServer on 127.0.0.1: HTTPS with these (certificate, key), or plain HTTP."""
    state = ArchiveServer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    if certs is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certs[0]), str(certs[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serving(server) as port:
        state.base = f"{'https' if certs else 'http'}://127.0.0.1:{port}"
        yield state


def zip_bytes(files: Mapping[str, str | bytes], *, links: Mapping[str, str] | None = None,
              special: Callable[[zipfile.ZipFile], None] | None = None) -> bytes:  # fmt: skip
    """A zip of {name: content}; `links` adds symlink members {name: target}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        if special is not None:
            special(zf)
    return buffer.getvalue()
