"""Unpacking fetched archives: every member checked, nothing written outside the target,
Ray's top-level directory stripping."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from reconciler.errors import FetchRefused
from reconciler.runtime import zipsafe
from tests.packaging_support import zip_bytes

CAP = 1 << 20


def _unpack(tmp_path: Path, data: bytes, *, max_bytes: int = CAP) -> Path:
    archive = tmp_path / "a.zip"
    archive.write_bytes(data)
    dest = tmp_path / "out"
    zipfile_ok = tmp_path / "outside.txt"
    zipfile_ok.write_text("untouched")
    zipsafe.unpack(archive, dest, max_bytes=max_bytes, max_files=100)
    return dest


def test_github_archive_top_directory_is_stripped(tmp_path: Path) -> None:
    data = zip_bytes(
        {
            "repo-main/": "",
            "repo-main/app.py": "X = 1\n",
            "repo-main/pkg/m.py": "",
            "__MACOSX/._x": "",
        }
    )
    dest = _unpack(tmp_path, data)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "app.py",
        "pkg",
        "pkg/m.py",
    ]


def test_two_top_level_entries_or_a_single_file_are_kept_as_they_are(tmp_path: Path) -> None:
    dest = _unpack(tmp_path, zip_bytes({"a/x.py": "", "b.py": ""}))
    assert (dest / "a" / "x.py").is_file() and (dest / "b.py").is_file()
    other = tmp_path / "single"
    other.mkdir()
    dest = _unpack(other, zip_bytes({"only.py": "Y = 2\n"}))
    assert (dest / "only.py").read_text() == "Y = 2\n"


def test_links_inside_the_archive_are_kept(tmp_path: Path) -> None:
    dest = _unpack(
        tmp_path, zip_bytes({"top/real.py": "Z = 3\n"}, links={"top/alias.py": "real.py"})
    )
    assert (dest / "alias.py").is_symlink() and (dest / "alias.py").read_text() == "Z = 3\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (zip_bytes({"../evil.py": "x"}), "zip-slip"),
        (zip_bytes({"a/../../evil.py": "x"}), "zip-slip"),
        (zip_bytes({"/etc/evil.py": "x"}), "absolute path"),
        (zip_bytes({"C:/evil.py": "x"}), "absolute path"),
        (zip_bytes({"a\\..\\evil.py": "x"}), "backslash"),
        (zip_bytes({"a/x.py": ""}, links={"a/out": "../../outside.txt"}), "outside the archive"),
        (zip_bytes({"a/x.py": ""}, links={"a/abs": "/etc/passwd"}), "outside the archive"),
        # lexically inside, out on disk through another link: a/up -> .. then x -> a/up/..
        (zip_bytes({"t/a/f": ""}, links={"t/a/up": "..", "t/x": "a/up/.."}), "out of the archive"),
        (
            zip_bytes({"a/f": ""}, links={"a/d": "."}, special=lambda zf: zf.writestr("a/d/g", "")),
            "under a symlink",
        ),
    ],
)
def test_hostile_members_refuse_the_whole_archive(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        _unpack(tmp_path, data)
    assert words in str(caught.value)
    assert (tmp_path / "outside.txt").read_text() == "untouched"
    assert not (tmp_path / "evil.py").exists()


def test_device_files_are_refused(tmp_path: Path) -> None:
    def fifo(zf: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo("top/pipe")
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, "")

    with pytest.raises(FetchRefused, match="device, FIFO or socket"):
        _unpack(tmp_path, zip_bytes({"top/a.py": ""}, special=fifo))


def test_the_unpacked_size_is_capped_even_when_the_header_lies(tmp_path: Path) -> None:
    with pytest.raises(FetchRefused, match="more than the cap"):
        _unpack(tmp_path, zip_bytes({"big.bin": b"0" * 5000}), max_bytes=4000)
    data = bytearray(zip_bytes({"big.bin": b"0" * 5000}))
    # Rewrite the declared sizes (local header and central directory) to 10 bytes.
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(header) + offset
        data[at : at + 4] = (10).to_bytes(4, "little")
    lying = tmp_path / "lying"
    lying.mkdir()
    with pytest.raises(FetchRefused, match=r"more bytes than the cap|damaged"):
        _unpack(lying, bytes(data), max_bytes=4000)


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchRefused, match="not a zip file"):
        _unpack(tmp_path, b"<html>login page</html>")


def test_files_are_written_readable_not_writable_by_others(tmp_path: Path) -> None:
    dest = _unpack(tmp_path, zip_bytes({"top/a.py": "A = 1\n"}))
    assert stat.S_IMODE(os.stat(dest / "a.py").st_mode) == 0o644
