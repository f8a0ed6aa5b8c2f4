"""scrub(): credentials never survive in any text we log or raise."""

from __future__ import annotations

import pytest

from reconciler.source import scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:secret@host/x.git", "https://user:***@host/x.git"),
        ("fatal: 'https://tok3n@github.com/a/b'", "fatal: 'https://***@github.com/a/b'"),
        ("ssh://git@host:22/x.git", "ssh://git@host:22/x.git"),
        ("ssh://git:pw@host/x.git", "ssh://git:***@host/x.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("https://h/x?access_token=abc123&b=1", "https://h/x?access_token=***&b=1"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("token ghp_" + "a" * 36 + " leaked", "token *** leaked"),
        ("glpat-abcdefghijklmnopqrst", "***"),
        ("no url here", "no url here"),
    ],
)
def test_scrub_removes_credentials(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_handles_several_urls_in_one_text() -> None:
    text = "from https://a:one@h1/x to http://b:two@h2/y"
    out = scrub(text)
    assert "one" not in out
    assert "two" not in out
    assert "h1/x" in out
    assert "h2/y" in out
