"""Docker image references: what `runtime_env.image_uri` may hold.

The grammar is Docker's own (distribution/reference): `[registry[:port]/]path[:tag][@digest]`,
path components lowercase, the name at most 255 characters, the tag at most 128. Checked here
so that a config asking for something Docker would refuse, or something that is not an image at
all (`--privileged`, a value with spaces or newlines), is refused before anything runs. One
deliberate tightening: the registry host must be lowercase too, since `UPPER/case` is far more
likely a typo than a registry called UPPER.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
MAX_NAME = 255
MAX_REFERENCE = 1024  # name, tag and digest together; checked first so no regex sees more
EXAMPLE = "python:3.11-slim, ghcr.io/org/app:1.2 or app@sha256:<64 hex digits>"


def problem(reference: str) -> str | None:
    """Why `reference` is not a usable Docker image reference, or None when it is."""
    if not reference:
        return "image_uri is empty"
    if len(reference) > MAX_REFERENCE:
        return f"image_uri is {len(reference)} characters long; a Docker image reference is shorter"
    if any(c.isspace() or not c.isprintable() for c in reference):
        return "image_uri contains whitespace or control characters; an image reference has none"
    if reference.startswith("-"):
        return "image_uri starts with '-', which looks like a command-line option, not an image"
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        hint = " (image names are lowercase)" if reference != reference.lower() else ""
        shown = _shown(reference)
        return f"image_uri {shown} is not a Docker image reference{hint}; e.g. {EXAMPLE}"
    if len(match.group("name")) > MAX_NAME:
        return f"image_uri names an image longer than {MAX_NAME} characters"
    return None


def _shown(reference: str) -> str:
    return repr(reference if len(reference) <= 80 else reference[:77] + "...")
