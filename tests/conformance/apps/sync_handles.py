"""A sync handler waiting for handle calls with `.result()`, and errors crossing a handle with
their own exception type."""

from ray import serve


@serve.deployment
class Validator:
    def check(self, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value


@serve.deployment
class Front:
    def __init__(self, validator):
        self.validator = validator

    def __call__(self, request) -> dict:
        value = int(request.query_params["v"])
        try:
            return {"ok": self.validator.check.remote(value).result(timeout_s=30)}
        except ValueError as exc:
            return {"error": str(exc), "type": type(exc).__name__}


app = Front.bind(Validator.bind())
