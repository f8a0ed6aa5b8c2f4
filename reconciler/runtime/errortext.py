"""The user's own error text from a failed replica's log tail.

The replica runtime prints the traceback of a failed `__init__` and exits, so the exception line
that follows the last "Traceback" header is the user's `ExcType: message`. Request tracebacks
are printed with a "[request] " prefix and never match.
"""

from __future__ import annotations

import re

_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*: \S")
_MAX = 2000


def _after_last_traceback(lines: list[str]) -> str | None:
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return None
    tail = lines[starts[-1] + 1 :]
    body = [i for i, line in enumerate(tail) if not line[:1].isspace()]
    if not body:
        return None
    # The exception line, plus any continuation lines of a multi-line message.
    return "\n".join(tail[body[0] :]).strip() or None


def user_error(log_text: str, exit_code: int | None) -> str:
    """`ExcType: message (exit code N)`; else the last line that looks like one; else the last
    non-empty line."""
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    line = _after_last_traceback(lines)
    if line is None:
        matching = [x for x in lines if _EXC_LINE.match(x)]
        line = matching[-1] if matching else (lines[-1] if lines else "")
    code = f"exit code {exit_code}" if exit_code is not None else "exited"
    return f"{line[:_MAX]} ({code})" if line else f"replica exited ({code}) with no output"


_EXITED = re.compile(r"Exited \((-?\d+)\)")


def exit_code(status_text: str) -> int | None:
    """The exit code in Docker's status text ("Exited (1) 3 seconds ago")."""
    match = _EXITED.search(status_text)
    return int(match.group(1)) if match else None
