"""Docker HEALTHCHECK probe: `python3 /opt/serve/probe.py` exits 0 when the replica's
`GET /-/healthz` answers 200, else 1 (the runtime runs the user's `check_health()` behind it)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("SERVE_HTTP_PORT", "8000")
    timeout = float(os.environ.get("SERVE_HEALTH_CHECK_TIMEOUT_S", "30")) + 1.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=timeout) as r:
            return 0 if r.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(_error_text(exc.read()), file=sys.stderr)  # Docker keeps it in State.Health.Log
    except (urllib.error.URLError, OSError) as exc:
        print(f"health check failed: {exc}", file=sys.stderr)
    return 1


def _error_text(body: bytes) -> str:
    """The user's check_health() error as `ExcType: message`."""
    try:
        data = json.loads(body)
        return f"{data['type']}: {data['error']}" if data.get("type") else str(data["error"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return body.decode("utf-8", "replace")[:500]


if __name__ == "__main__":
    sys.exit(main())
