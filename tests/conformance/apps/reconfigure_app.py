"""user_config from the config reaches reconfigure() at start; check_health() is called."""

from ray import serve


@serve.deployment(user_config={"threshold": 1})
class Thresholds:
    def __init__(self):
        self.threshold = None
        self.checks = 0

    def reconfigure(self, config: dict):
        self.threshold = config["threshold"]

    def check_health(self):
        self.checks += 1

    async def __call__(self, request) -> dict:
        value = float(request.query_params.get("v", "0"))
        return {
            "threshold": self.threshold,
            "above": value > self.threshold,
            "checked": self.checks > 0,
        }


app = Thresholds.bind()
