"""Logging the way Serve code logs: the "ray.serve" logger and a module logger both reach the
replica's output, tagged with the deployment, replica and request id."""

import logging

from ray import serve

logger = logging.getLogger("ray.serve")
own = logging.getLogger(__name__)


@serve.deployment
class Chatty:
    def __call__(self, request) -> str:
        word = request.query_params.get("word", "none")
        logger.info("serve logger says %s", word)
        own.warning("module logger says %s", word)
        return word


app = Chatty.bind()
