"""`__call__` without a request parameter: Serve passes nothing."""

from ray import serve


@serve.deployment
class Greeter:
    def __init__(self, greeting: str):
        self.greeting = greeting

    def __call__(self) -> str:
        return f"{self.greeting}, world"


app = Greeter.bind("hello")
