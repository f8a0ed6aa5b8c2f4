"""Application builders: import_path names a function taking the config's `args` (a dict, or
the pydantic model it annotates) and returning the application."""

from pydantic import BaseModel
from ray import serve


@serve.deployment
class Echo:
    def __init__(self, message: str, repeat: int = 1):
        self.message, self.repeat = message, repeat

    def __call__(self) -> str:
        return " ".join([self.message] * self.repeat)


def build_app(args: dict) -> serve.Application:
    return Echo.bind(args["message"])


class EchoArgs(BaseModel):
    message: str
    repeat: int = 2


def build_typed_app(args: EchoArgs) -> serve.Application:
    return Echo.bind(args.message, args.repeat)
