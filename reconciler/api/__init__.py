"""The HTTP API of the daemon: `/status`, `/config`, `/history`, `/healthz`, `/metrics`,
`/webhook`, `/pin` and `/rollback` (behind the API token), the dashboard (`/`,
`/dashboard.json`) and `/openapi.json`, built by `create_app` and served by `ApiServer`
(waitress). The only package importing flask."""

from reconciler.api.routes import create_app
from reconciler.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
