"""The terminal view of `reconciler up`: a line each time an application's or a deployment's
status (or an error) changes."""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.model import Snapshot


class StatusPrinter:
    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self._echo = echo
        self._last: dict[str, str] = {}

    def __call__(self, snap: Snapshot) -> None:
        stamp = time.strftime("%H:%M:%S")
        for app in snap.applications:
            self._line(app.name, f"{stamp} {app.name}: {app.status.value} {app.message}".rstrip())
            for dep in app.deployments:
                key = f"{app.name}/{dep.name}"
                text = f"{stamp}   {dep.name}: {dep.status.value} {dep.message}".rstrip()
                self._line(key, text)
        for error in (snap.loop.engine_error, snap.loop.source_error):
            if error:
                self._line("error", f"{stamp} error: {error}")

    def _line(self, key: str, text: str) -> None:
        body = text.split(" ", 1)[1]
        if self._last.get(key) != body:
            self._last[key] = body
            self._echo(text)
